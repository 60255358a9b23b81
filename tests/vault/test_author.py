"""The author of this device's records: what it writes is durable, wherever it is written."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_records_written_together_take_consecutive_seqs_and_one_signature_per_tree() -> None:
    from wifisync.model.records import TREE_LEAVES, Kind
    from wifisync.vault.author import Write

    (a,) = household(1)
    author = a.vault.author
    first = a.store.next_seq(a.id)
    writes = [Write(bytes([i]) * 16, Kind.ITEM, lambda _h, _held: b"body")
              for i in range(TREE_LEAVES + 2)]
    records = author.write_many(writes)
    assert [r.header.seq for r in records] == list(range(first, first + TREE_LEAVES + 2))
    assert len({r.signature for r in records}) == 2
    assert all(a.store.heads(r.header.item) == [r] for r in records)
    a.vault.signatures.check_all(records)  # marked as this device's own: read back as valid
    with pytest.raises(ValueError, match="each item once"):
        author.write_many(writes[:1] * 2)
    assert a.store.next_seq(a.id) == first + TREE_LEAVES + 2  # the refused call wrote nothing


def test_writing_together_holds_writes_until_the_end_and_a_second_write_flushes() -> None:
    (a,) = household(1)
    vault = a.vault
    with vault.writing_together():
        first = vault.add("one")
        assert a.store.heads(first) == []  # held, not yet written
        vault.add("two")
        vault._write_item(first, {"title": "renamed"})  # a second write: held ones go first
        assert len(a.store.heads(first)) == 1
    [renamed] = a.store.heads(first)
    assert len(renamed.header.versions) == 1 and renamed.header.seq == a.store.max_seq(a.id)
    assert {v.state.title for v in vault.items()} == {"renamed", "two"}
