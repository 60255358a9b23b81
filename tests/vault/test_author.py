"""The author of this device's records: what it writes is durable, wherever it is written."""

from __future__ import annotations

from pathlib import Path

from tests.sync.helpers import household
from wifisync.store import SqliteStore


def test_a_record_this_device_signs_is_synced_even_inside_a_relaxed_transaction(
        tmp_path: Path, synced_files: list[str]) -> None:
    (a,) = household(1, store_factory=lambda: SqliteStore(tmp_path / "vault.db"))
    synced = synced_files
    with a.store.transaction(durable=False):  # as the daemon stores what peers send
        a.vault.add("written meanwhile", fields={"password": "p"})
    # its sequence number must never be handed out again after a power cut
    assert synced == ["vault.db-wal"]
