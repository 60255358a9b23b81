"""Records found by ID through an index of the ID's first bytes (schema v8), never a scan."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from tests.store.builders import make_record
from wifisync.model.identity import DeviceIdentity
from wifisync.store import SqliteStore
from wifisync.store.sqlite import ID_KEY_BYTES, SCHEMA_VERSION

RECORDS = 2000


def filled(path: Path, author: DeviceIdentity) -> tuple[SqliteStore, list[bytes]]:
    store = SqliteStore(path)
    records = [make_record(author, seq, item=seq.to_bytes(16, "big"))
               for seq in range(1, RECORDS + 1)]
    store.append_many(records)
    return store, [r.id for r in records]


def vm_steps(store: SqliteStore, lookup: Callable[[], object]) -> int:
    """SQLite's virtual-machine steps (in hundreds) a lookup takes: a scan of the records
    takes one or more per record."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    store._db.set_progress_handler(count, 100)
    try:
        lookup()
    finally:
        store._db.set_progress_handler(None, 0)
    return steps


def test_a_record_is_found_by_its_id_without_a_scan(
        tmp_path: Path, devices: list[DeviceIdentity]) -> None:
    store, ids = filled(tmp_path / "vault.db", devices[0])
    rid = ids[RECORDS // 2]
    assert store.has_record(rid) and store.get_record(rid) is not None
    assert vm_steps(store, lambda: store.has_record(rid)) <= 1
    assert vm_steps(store, lambda: store.get_record(rid)) <= 1
    assert vm_steps(store, lambda: store.signature_sets(ids[:5])) <= 2
    store._db.execute("DROP INDEX records_id")  # the index is what makes it so
    assert vm_steps(store, lambda: store.has_record(rid)) >= RECORDS // 100
    assert vm_steps(store, lambda: store.signature_sets(ids[:5])) >= RECORDS // 100
    store.close()


def test_an_id_that_shares_only_the_indexed_bytes_is_not_held(
        tmp_path: Path, devices: list[DeviceIdentity]) -> None:
    store, ids = filled(tmp_path / "vault.db", devices[0])
    held = ids[7]
    other = held[:ID_KEY_BYTES] + bytes(b ^ 0xFF for b in held[ID_KEY_BYTES:])
    assert store.has_record(held) and not store.has_record(other)
    assert store.get_record(other) is None
    assert store.signature_sets([other]) == []
    assert not store.add_signature_set([held, other], b"m" * 16)
    assert sorted(store.record_ids()) == list(store.record_ids()) == sorted(ids)
    store.close()


def test_a_version_7_store_loses_its_whole_id_index_and_keeps_its_records(
        tmp_path: Path, devices: list[DeviceIdentity]) -> None:
    path = tmp_path / "vault.db"
    store, ids = filled(path, devices[0])
    store.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript("""
        BEGIN;
        CREATE TABLE records_v7 (
            n INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, origin BLOB NOT NULL,
            seq INTEGER NOT NULL, item BLOB NOT NULL, kind INTEGER NOT NULL,
            data BLOB NOT NULL, UNIQUE (origin, seq));
        INSERT INTO records_v7 SELECT n, id, origin, seq, item, kind, data FROM records;
        DROP TABLE records;
        ALTER TABLE records_v7 RENAME TO records;
        PRAGMA user_version = 7;
        COMMIT;
    """)
    db.close()
    store = SqliteStore(path)
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    indexes = {name: unique for _seq, name, unique, *_rest in
               store._db.execute("PRAGMA index_list(records)")}
    assert set(indexes) == {"records_id", "records_tombstones", "sqlite_autoindex_records_1"}
    assert indexes["sqlite_autoindex_records_1"]  # UNIQUE (origin, seq), and nothing whole
    assert store.count_records() == RECORDS and all(store.has_record(rid) for rid in ids)
    assert [r.id for r in store.records_after(devices[0].device_id, 0, 5)] == ids[:5]
    assert vm_steps(store, lambda: store.has_record(ids[-1])) <= 1
    store.close()
