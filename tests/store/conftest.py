"""Fixtures for the store contract: both stores, a few devices, and a record builder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.builders import MakeRecord, make_record
from wifisync.model.identity import DeviceIdentity
from wifisync.store import MemoryStore, RecordStore, SqliteStore


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RecordStore]:
    s: RecordStore = MemoryStore() if request.param == "memory" else SqliteStore(
        tmp_path / "vault.db")
    yield s
    s.close()


@pytest.fixture(scope="session")
def devices() -> list[DeviceIdentity]:
    return sorted((DeviceIdentity.generate() for _ in range(3)), key=lambda d: d.device_id)


@pytest.fixture
def rec() -> MakeRecord:
    return make_record
