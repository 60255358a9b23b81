"""The store's reads for large vaults: live items counted in SQL, ID prefixes as key ranges,
held versions streamed in bounded batches from one snapshot."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from tests.store.builders import make_record
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Kind, Record, sign_records
from wifisync.store import MemoryStore, RecordStore, SqliteStore


def live_by_decoding(store: RecordStore) -> int:
    """The count as the records say it: items with a held version that is not a delete."""
    return sum(1 for _item, held in store.heads_of_kind(Kind.ITEM)
               if any(not r.header.deleted for r in held))


def other_devices(n: int) -> dict[bytes, int]:
    """Version-vector entries of ``n`` more devices (their IDs need no key)."""
    return {bytes([i + 1]) * 32: 1 for i in range(n)}


def test_live_items_are_counted_right_after_deletes_edits_and_concurrent_versions(
        tmp_path: Path, devices: list[DeviceIdentity]) -> None:
    a, b, _c = devices
    rng = random.Random(16)
    store = SqliteStore(tmp_path / "vault.db")
    seqs = {a.device_id: 0, b.device_id: 0}
    expected_live = 0
    for n in range(60):
        item = n.to_bytes(16, "big")
        # Wide vectors make headers of more than 255 bytes (bin 16), narrow ones bin 8.
        wide = other_devices(rng.choice([0, 8]))
        fate = rng.choice(["live", "deleted", "edited", "concurrent-delete", "both-deleted"])
        seqs[a.device_id] += 1
        first = make_record(a, seqs[a.device_id], item, versions=wide, body=b"x" * 40)
        store.append(first)
        if fate == "deleted" or fate == "edited":
            seqs[a.device_id] += 1
            store.append(make_record(a, seqs[a.device_id], item,
                                     versions={**wide, a.device_id: seqs[a.device_id] - 1},
                                     deleted=fate == "deleted", body=b"" if fate == "deleted"
                                     else b"y" * 40))
        elif fate in ("concurrent-delete", "both-deleted"):
            # Two concurrent heads: a delete on b, and on a a delete or a live edit.
            seqs[b.device_id] += 1
            store.append(make_record(b, seqs[b.device_id], item, versions=wide, deleted=True,
                                     body=b""))
            seqs[a.device_id] += 1
            store.append(make_record(a, seqs[a.device_id], item,
                                     versions={**wide, a.device_id: seqs[a.device_id] - 1},
                                     deleted=fate == "both-deleted",
                                     body=b"" if fate == "both-deleted" else b"z" * 40))
        expected_live += fate in ("live", "edited", "concurrent-delete")
    assert store.count_live_items() == expected_live == live_by_decoding(store)
    assert 0 < expected_live < 60
    store.close()


def test_tombstones_signed_in_a_record_tree_are_counted_as_deletes(
        tmp_path: Path, devices: list[DeviceIdentity]) -> None:
    """A tree record is a 4-array (0x94): the tombstone index reads its header all the same."""
    a = devices[0]
    store = SqliteStore(tmp_path / "vault.db")
    for seq, item in enumerate((b"1" * 16, b"2" * 16, b"3" * 16), start=1):
        store.append(make_record(a, seq, item))
    parts = []
    for seq, (item, wide) in enumerate(((b"1" * 16, 0), (b"2" * 16, 8)), start=4):
        header = make_record(a, seq, item, versions={**other_devices(wide), a.device_id: seq - 3},
                             deleted=True, body=b"").header
        parts.append((header, b""))
    deletes = sign_records(a, parts)
    assert all(r.proof and r.encoded[0] == 0x94 for r in deletes)
    store.append_many(deletes)
    assert store.count_live_items() == 1 == live_by_decoding(store)
    store.close()


def test_a_store_of_schema_5_gets_the_tombstone_index_and_title_tags(
        tmp_path: Path, devices: list[DeviceIdentity]) -> None:
    a = devices[0]
    path = tmp_path / "vault.db"
    store = SqliteStore(path)
    store.append(make_record(a, 1, b"1" * 16))
    store.append(make_record(a, 2, b"2" * 16))
    store.append(make_record(a, 3, b"2" * 16, versions={a.device_id: 2}, deleted=True, body=b""))
    store.close()
    db = sqlite3.connect(path)
    db.execute("DROP INDEX records_tombstones")
    db.execute("DROP TABLE title_tags")
    db.execute("DROP TABLE twins")
    db.execute("PRAGMA user_version = 5")
    db.commit()
    db.close()
    store = SqliteStore(path)
    assert store.count_live_items() == 1
    assert [[tag for _i, _r, tag, _rec in batch] for batch in store.stream_title_tags()] == [
        [None, None]]  # held versions, none tagged yet
    store.close()


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_items_are_found_by_any_hex_prefix_of_their_id(
        tmp_path: Path, devices: list[DeviceIdentity], store_kind: str) -> None:
    store: RecordStore = (MemoryStore() if store_kind == "memory"
                          else SqliteStore(tmp_path / "vault.db"))
    ids = [bytes.fromhex(h) for h in ("ab12" + "0" * 28, "ab1f" + "0" * 28,
                                      "ab20" + "0" * 28, "ff" * 16, "0" * 32)]
    for seq, item in enumerate(ids, 1):
        store.append(make_record(devices[0], seq, item))
    found = {p: {i.hex()[:4] for i in store.held_items_with_prefix(Kind.ITEM, p)}
             for p in ("ab1", "ab12", "ab", "a", "ffff", "f", "0000", "abc", "ab20" + "0" * 28)}
    assert found == {"ab1": {"ab12", "ab1f"}, "ab12": {"ab12"}, "ab": {"ab12", "ab1f", "ab20"},
                     "a": {"ab12", "ab1f", "ab20"}, "ffff": {"ffff"}, "f": {"ffff"},
                     "0000": {"0000"}, "abc": set(), "ab20" + "0" * 28: {"ab20"}}
    store.close()


def test_heads_stream_in_bounded_batches_with_concurrent_heads_together(
        tmp_path: Path, devices: list[DeviceIdentity]) -> None:
    a, b, _c = devices
    store = SqliteStore(tmp_path / "vault.db")
    for n in range(1, 26):
        store.append(make_record(a, n, n.to_bytes(16, "big")))
    store.append(make_record(b, 1, (7).to_bytes(16, "big")))  # item 7: two concurrent heads
    batches = list(store.stream_heads(Kind.ITEM, batch=4))
    assert all(len(batch) <= 4 for batch in batches)
    groups = {item: held for batch in batches for item, held in batch}
    assert sum(len(batch) for batch in batches) == len(groups) == 25
    assert all(held is not None for held in groups.values())
    assert {r.id for r in groups[(7).to_bytes(16, "big")] or []} == {
        r.id for r in store.heads((7).to_bytes(16, "big"))}
    store.close()


def test_a_corrupt_record_makes_only_its_item_unreadable_in_the_stream(
        tmp_path: Path, devices: list[DeviceIdentity]) -> None:
    a = devices[0]
    path = tmp_path / "vault.db"
    store = SqliteStore(path)
    records: list[Record] = [make_record(a, n, n.to_bytes(16, "big")) for n in range(1, 6)]
    for r in records:
        store.append(r)
    store.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE records SET data = ? WHERE id = ?",
               (records[2].encoded[:-1] + bytes([records[2].encoded[-1] ^ 1]), records[2].id))
    db.commit()
    db.close()
    store = SqliteStore(path)
    groups = {item: held for batch in store.stream_heads(Kind.ITEM) for item, held in batch}
    assert [item for item, held in groups.items() if held is None] == [records[2].header.item]
    assert len(groups) == 5
    store.close()


def test_the_stream_keeps_its_snapshot_while_the_reader_writes_and_another_process_syncs(
        tmp_path: Path, devices: list[DeviceIdentity]) -> None:
    a, b, _c = devices
    path = tmp_path / "vault.db"
    store = SqliteStore(path)
    for n in range(1, 11):
        store.append(make_record(a, n, n.to_bytes(16, "big")))
    daemon = SqliteStore(path)
    seen: list[bytes] = []
    for i, batch in enumerate(store.stream_heads(Kind.ITEM, batch=3)):
        seen += [item for item, _held in batch]
        store.add_signature_marks({bytes([i]) * 32: b"m" * 16})  # the reader writes
        daemon.append(make_record(b, i + 1, (100 + i).to_bytes(16, "big")))  # a sync writes
    assert len(seen) == 10  # the items of the snapshot, each once, none of the later ones
    assert store.count_live_items() == 10 + len(range(0, 10, 3))
    daemon.close()
    store.close()
