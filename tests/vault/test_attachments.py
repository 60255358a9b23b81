"""Attachments in the vault: exact round trips, one copy per content, and nothing partial."""

from __future__ import annotations

import io
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sync.helpers import FAST_KDF, PASSWORD, identity
from wifisync.errors import UsageError, WifisyncError
from wifisync.model.chunks import chunk_count, chunk_item, seal_chunk
from wifisync.model.records import CHUNK_BYTES, Kind
from wifisync.store import SqliteStore
from wifisync.vault import attachments as att
from wifisync.vault.unlocked import Vault

SIZES = [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES + 17]
LIMIT = 64 * 1024 * 1024


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    """A vault in a real SQLite store."""
    store = SqliteStore(tmp_path / "store.sqlite")
    yield Vault.create(store, identity(0), "dev", PASSWORD, FAST_KDF)
    store.close()


def attach_bytes(vault: Vault, item: bytes, name: str, data: bytes) -> att.AttachmentRef:
    return att.attach(vault, item, name, att.Source.of_stream(io.BytesIO(data)), LIMIT)


def read_back(vault: Vault, item: bytes, name: str) -> bytes:
    out = io.BytesIO()
    att.write_to(vault, att.find(vault, item, name), out)
    return out.getvalue()


def chunk_records(vault: Vault) -> int:
    return sum(1 for rid in vault.store.record_ids()
               if (r := vault.store.get_record(rid)) and r.header.kind == Kind.CHUNK)


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_is_exact_at_every_chunk_boundary(vault: Vault, tmp_path: Path, size: int
                                                     ) -> None:
    data = os.urandom(size)
    item = vault.add("passport")
    ref = attach_bytes(vault, item, "scan.bin", data)
    assert ref.size == size and chunk_records(vault) == chunk_count(size)
    assert read_back(vault, item, "scan.bin") == data
    att.save_as(vault, att.find(vault, item, "scan.bin"), tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data


def test_a_file_read_from_disk_twice_and_one_from_a_stream_are_the_same_attachment(
        vault: Vault, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_BYTES + 5)
    path = tmp_path / "recovery-codes.pdf"
    path.write_bytes(data)
    first, second = vault.add("mail"), vault.add("bank")
    ref1 = att.attach(vault, first, "codes.pdf", att.Source.of_path(path), LIMIT)
    before = vault.store.count_records()
    ref2 = attach_bytes(vault, second, "copy.pdf", data)
    assert ref1 == ref2
    assert vault.store.count_records() == before + 1  # the item version only: no new chunk
    assert chunk_records(vault) == 3
    assert read_back(vault, second, "copy.pdf") == data


def test_the_attachment_id_is_keyed_by_the_vault_so_a_relay_cannot_confirm_a_guess(
        tmp_path: Path) -> None:
    data = b"the passport scan everyone has"
    ids = []
    for i in range(2):
        store = SqliteStore(tmp_path / f"s{i}.sqlite")
        v = Vault.create(store, identity(i), "dev", PASSWORD, FAST_KDF)
        ids.append(attach_bytes(v, v.add("x"), "a", data))
        store.close()
    import hashlib

    assert ids[0].sha256 == ids[1].sha256 == hashlib.sha256(data).digest()
    assert ids[0].id != ids[1].id and hashlib.sha256(data).digest() not in (ids[0].id, ids[1].id)


def test_plaintext_is_not_in_the_store(vault: Vault, tmp_path: Path) -> None:
    marker = b"RECOVERY-CODE-7f3a9c" * 1000
    attach_bytes(vault, vault.add("codes"), "codes.txt", marker)
    vault.store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("store"))
    assert b"RECOVERY-CODE-7f3a9c" not in raw


def _corrupt_chunk(path: Path, index_of_chunk: int) -> None:
    """Flip one byte of the body of the n-th chunk record in the SQLite file."""
    db = sqlite3.connect(path)
    rows = db.execute("SELECT n, data FROM records WHERE kind = ? ORDER BY seq",
                      (int(Kind.CHUNK),)).fetchall()
    n, data = rows[index_of_chunk]
    data = bytearray(data)
    data[len(data) // 2] ^= 1
    db.execute("UPDATE records SET data = ? WHERE n = ?", (bytes(data), n))
    db.commit()
    db.close()


def _delete_chunk(path: Path, index_of_chunk: int) -> None:
    db = sqlite3.connect(path)
    rows = db.execute("SELECT n, item FROM records WHERE kind = ? ORDER BY seq",
                      (int(Kind.CHUNK),)).fetchall()
    n, item = rows[index_of_chunk]
    db.execute("DELETE FROM item_log WHERE item = ? AND n = ?", (item, n))
    db.execute("DELETE FROM records WHERE n = ?", (n,))
    db.commit()
    db.close()


@pytest.mark.parametrize(("damage", "said"), [(_corrupt_chunk, "fails its integrity check"),
                                              (_delete_chunk, "is missing")])
def test_a_bad_or_missing_chunk_fails_naming_the_attachment_and_writes_nothing(
        tmp_path: Path, damage: object, said: str) -> None:
    path = tmp_path / "store.sqlite"
    store = SqliteStore(path)
    vault = Vault.create(store, identity(0), "dev", PASSWORD, FAST_KDF)
    item = vault.add("passport")
    attach_bytes(vault, item, "scan.bin", os.urandom(3 * CHUNK_BYTES))
    store.close()
    damage(path, 2)  # type: ignore[operator]
    store = SqliteStore(path)
    vault = Vault.unlock(store, identity(0), PASSWORD)
    found = att.find(vault, item, "scan.bin")
    out = io.BytesIO()
    with pytest.raises(att.AttachmentError, match=f"'scan.bin'.*chunk 3 of 3 {said}"):
        att.write_to(vault, found, out)
    assert out.getvalue() == b""  # not even the two good chunks before it
    with pytest.raises(att.AttachmentError):
        att.save_as(vault, found, tmp_path / "out.bin")
    assert sorted(p.name for p in tmp_path.iterdir() if "out" in p.name) == []
    store.close()


def test_a_signed_chunk_moved_to_another_position_does_not_open(vault: Vault) -> None:
    item = vault.add("passport")
    data = os.urandom(2 * CHUNK_BYTES)
    ref = attach_bytes(vault, item, "scan.bin", data)
    # A member (who holds the key) could write chunk 0's sealed bytes as chunk 1 of another
    # attachment of the same content; the position is bound, so it fails. Here: a later
    # version of chunk 1's item carries chunk 0's body (no store API deletes a record).
    [c0] = vault.store.heads(chunk_item(ref.id, 0))
    vault.author.write(chunk_item(ref.id, 1), Kind.CHUNK, lambda _h, _held: c0.body)
    with pytest.raises(att.AttachmentError, match="chunk 2 of 2 fails"):
        read_back(vault, item, "scan.bin")
    # and the truncated or extended count is bound too
    body = seal_chunk(vault.vault_key, ref.id, 1, 3, data[CHUNK_BYTES:])
    vault.author.write(chunk_item(ref.id, 1), Kind.CHUNK, lambda _h, _held: body)
    with pytest.raises(att.AttachmentError, match="chunk 2 of 2 fails"):
        read_back(vault, item, "scan.bin")


def test_a_file_larger_than_the_limit_is_refused_before_anything_is_stored(vault: Vault
                                                                         ) -> None:
    item = vault.add("x")
    before = vault.store.count_records()
    with pytest.raises(UsageError, match="larger than the attachment limit of 1 MiB"):
        att.attach(vault, item, "big", att.Source.of_stream(io.BytesIO(bytes(2**20 + 1))),
                   2**20)
    assert vault.store.count_records() == before


def test_a_file_that_changes_between_the_two_reads_is_not_attached(vault: Vault,
                                                                   tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(3 * CHUNK_BYTES))
    source = att.Source.of_path(path)
    first = source.first_pass

    def then_changed() -> Iterator[bytes]:
        yield from first()
        path.write_bytes(b"\1" * (3 * CHUNK_BYTES))

    source.first_pass = then_changed  # type: ignore[method-assign]
    item = vault.add("x")
    with pytest.raises(WifisyncError, match="changed while it was being attached"):
        att.attach(vault, item, "f", source, LIMIT)
    assert att.attachments(vault, item) == []


def test_attachments_merge_keep_history_and_go_with_the_item_like_fields(vault: Vault) -> None:
    item = vault.add("passport")
    attach_bytes(vault, item, "front.jpg", b"front")
    attach_bytes(vault, item, "back.jpg", b"back")
    attach_bytes(vault, item, "front.jpg", b"front, rescanned")
    assert read_back(vault, item, "front.jpg") == b"front, rescanned"
    att.detach(vault, item, "back.jpg")
    assert [a.name for a in att.attachments(vault, item)] == ["front.jpg"]
    history = vault.history(item)
    assert [sorted(s.attachments) for _r, s in history if s is not None] == [
        [], ["front.jpg"], ["back.jpg", "front.jpg"], ["back.jpg", "front.jpg"], ["front.jpg"]]
    assert "attachment:front.jpg" in vault.get(item).state.history  # the replaced scan
    vault.delete(item)
    assert vault.items() == []


@pytest.mark.parametrize("name", ["", "a/b", "..", "x\ny", "\\evil"])
def test_attachment_names_are_plain_file_names(vault: Vault, name: str) -> None:
    with pytest.raises(UsageError, match="bad attachment name"):
        attach_bytes(vault, vault.add("x"), name, b"x")


def test_a_stream_is_kept_sealed_on_disk_between_its_two_reads(vault: Vault) -> None:
    marker = b"STDIN-SECRET-" * 50_000
    source = att.Source.of_stream(io.BytesIO(marker))
    pieces = list(source.first_pass())
    assert source._spool is not None  # what reached the disk
    source._spool.seek(0)
    assert b"STDIN-SECRET-" not in source._spool.read()
    assert b"".join(source.second_pass()) == b"".join(pieces) == marker
    source.close()
