"""Fixtures of the import/export tests: a KeePass file (slow to make, so made once)."""

from __future__ import annotations

import pytest

from . import samples


@pytest.fixture(scope="session")
def kdbx_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The sample KeePass database's bytes (password ``samples.KDBX_PASSWORD``)."""
    return samples.kdbx(tmp_path_factory.mktemp("kdbx") / "sample.kdbx").read_bytes()
