"""WAL checkpoints on a thread of their own (a daemon's store)."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.store.builders import make_record
from wifisync.harness import wait_for
from wifisync.model.identity import DeviceIdentity
from wifisync.store import SqliteStore
from wifisync.store.checkpoints import EVERY_BYTES

BODY = 8 * 1024


def _write(store: SqliteStore, author: DeviceIdentity, first: int, count: int) -> None:
    """``count`` records of ``BODY`` bytes, 50 to a transaction, as a sync commits them."""
    for start in range(first, first + count, 50):
        with store.transaction(durable=False):
            store.append_many([make_record(author, seq, item=seq.to_bytes(16, "big"),
                                           body=bytes(BODY))
                               for seq in range(start, min(start + 50, first + count))])


def _checkpointers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "wifisync-checkpoint"]


def test_the_thread_copies_the_wal_back_once_enough_was_committed(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    store = SqliteStore(path)
    store.checkpoint_in_background()
    author = DeviceIdentity.generate()
    try:
        _write(store, author, 1, 20)
        assert path.stat().st_size < EVERY_BYTES // 4  # little committed: all still in the WAL
        # SQLite's own checkpoint would wait for 1000 pages of WAL (16 MiB): only the
        # thread copies these 5 MiB back
        _write(store, author, 21, EVERY_BYTES // BODY + 100)
        wait_for(lambda: path.stat().st_size > EVERY_BYTES, 10, "the checkpoint")
    finally:
        store.close()


def test_a_finished_sync_leaves_a_wal_already_copied_back(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    store = SqliteStore(path)
    store.checkpoint_in_background()
    try:
        _write(store, DeviceIdentity.generate(), 1, 40)
        before = path.stat().st_size
        store.release_memory()  # what the daemon does once a sync is over
        wait_for(lambda: path.stat().st_size >= before + 40 * BODY, 10, "the checkpoint")
    finally:
        store.close()


def test_closing_the_store_stops_its_thread(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "vault.db")
    store.checkpoint_in_background()
    assert len(_checkpointers()) == 1
    store.close()
    assert _checkpointers() == []
