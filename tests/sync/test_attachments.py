"""Attachment chunks on the wire: relayed by a device without the key, bounded in memory."""

from __future__ import annotations

import io
import os

from tests.sync.helpers import Device, Wire, household, identity, sync
from wifisync.model.chunks import chunk_item
from wifisync.model.records import CHUNK_BYTES, Kind, Record, RecordHeader, sign_record
from wifisync.sync import session as session_mod
from wifisync.sync.messages import MAX_BATCH_BYTES
from wifisync.vault import attachments as att

LIMIT = 64 * 1024 * 1024


def attach(device: Device, item: bytes, name: str, data: bytes) -> att.AttachmentRef:
    return att.attach(device.vault, item, name, att.Source.of_stream(io.BytesIO(data)), LIMIT)


def read(device: Device, item: bytes, name: str) -> bytes:
    out = io.BytesIO()
    vault = device.vault
    att.write_to(vault, att.find(vault, item, name), out)
    return out.getvalue()


def test_a_relay_that_never_uses_the_key_stores_and_forwards_chunks() -> None:
    a, relay, c = household(3)
    relay.vault_key = b""  # the relay (a NAS) runs replicas and sessions only
    data = os.urandom(5 * CHUNK_BYTES + 3)
    item = a.vault.add("passport")
    attach(a, item, "scan.bin", data)
    sync(a, relay)
    sync(relay, c)
    assert read(c, item, "scan.bin") == data
    assert relay.store.fingerprint() == a.store.fingerprint() == c.store.fingerprint()


def _chunk_like(author: Device, vault_id: bytes, seq: int, body: bytes, *,
                deleted: bool = False, versions: dict[bytes, int] | None = None) -> Record:
    header = RecordHeader(vault=vault_id, item=chunk_item(bytes(32), 0), kind=Kind.CHUNK,
                          author=author.id, seq=seq,
                          versions=versions or {author.id: seq}, time=1, deleted=deleted)
    return sign_record(author.identity, header, body)


def test_chunk_records_out_of_shape_are_refused_by_the_accept_rule() -> None:
    a, b = household(2)
    vault_id = a.vault.vault_id
    seq = a.store.next_seq(a.id)
    other = identity(1).device_id
    bad = [
        _chunk_like(a, vault_id, seq, b"x" * 64, deleted=True),  # a chunk is never deleted
        _chunk_like(a, vault_id, seq + 1, b"x" * 64,
                    versions={a.id: seq + 1, other: 1}),  # nor edited
        _chunk_like(a, vault_id, seq + 2, b"x" * 8),  # shorter than nonce and tag
        _chunk_like(a, vault_id, seq + 3, b"x" * (CHUNK_BYTES + 41)),  # longer than a chunk
    ]
    result = b.replica.apply(bad)
    assert result.refused == len(bad) and not result.applied
    good = _chunk_like(a, vault_id, seq + 4, b"x" * 64)
    assert b.replica.apply([good]).applied == [good]


def test_sessions_keep_large_records_within_the_byte_window() -> None:
    a, b = household(2)
    item = a.vault.add("big")
    attach(a, item, "big.bin", os.urandom(48 * CHUNK_BYTES))  # 12 MiB
    wire = Wire(a, b)
    worst_unacked = worst_pending = 0
    for _ in range(100_000):
        if not wire.queue:
            break
        wire.deliver_one()
        sender, receiver = wire.sessions
        worst_unacked = max(worst_unacked, sender._unacked_bytes)
        worst_pending = max(worst_pending, receiver._pending_bytes)
    assert wire.in_sync
    assert read(b, item, "big.bin") == read(a, item, "big.bin")
    batch = MAX_BATCH_BYTES
    assert worst_unacked <= session_mod.WINDOW_BYTES + batch
    assert worst_pending <= session_mod.WINDOW_BYTES + batch
    assert worst_unacked >= session_mod.WINDOW_BYTES  # large records filled the window


def test_the_same_file_attached_on_two_devices_is_one_attachment_for_both() -> None:
    a, b = household(2)
    data = os.urandom(CHUNK_BYTES + 1)
    on_a, on_b = a.vault.add("a"), b.vault.add("b")
    ref_a = attach(a, on_a, "f", data)
    ref_b = attach(b, on_b, "f", data)
    assert ref_a == ref_b
    sync(a, b)
    # both devices wrote each chunk once: both copies are kept (concurrent), either reads
    assert len(a.store.heads(chunk_item(ref_a.id, 0))) == 2
    assert read(a, on_b, "f") == read(b, on_a, "f") == data
