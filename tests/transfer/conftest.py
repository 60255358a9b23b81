"""Fixtures of the import/export tests: a KeePass file (slow to make, so made once)."""

from __future__ import annotations

import pytest

from tests.transfer import samples
from wifisync.model import crypto
from wifisync.model.identity import DeviceIdentity
from wifisync.store import MemoryStore, RecordStore
from wifisync.vault.unlocked import Vault


@pytest.fixture(scope="session")
def kdbx_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The sample KeePass database's bytes (password ``samples.KDBX_PASSWORD``)."""
    return samples.kdbx(tmp_path_factory.mktemp("kdbx") / "sample.kdbx").read_bytes()


FAST_KDF = crypto.KdfParams(salt=bytes(16), opslimit=1, memlimit=8192)
PASSWORD = "master pw"


def new_vault(store: RecordStore | None = None, identity: DeviceIdentity | None = None) -> Vault:
    """A fresh vault (cheapest KDF) on ``store`` (in memory by default)."""
    return Vault.create(store or MemoryStore(), identity or DeviceIdentity.generate(), "dev",
                        PASSWORD, FAST_KDF)


@pytest.fixture
def vault() -> Vault:
    """An empty vault in memory."""
    return new_vault()
