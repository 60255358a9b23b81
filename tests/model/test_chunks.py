"""Chunk naming and sealing: pinned derivations, and a chunk opens only where it belongs."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from wifisync.errors import IntegrityError
from wifisync.model import crypto
from wifisync.model.chunks import (
    SEALED_OVERHEAD,
    chunk_count,
    chunk_item,
    id_hasher,
    open_chunk,
    seal_chunk,
)
from wifisync.model.records import CHUNK_BYTES, MAX_RECORD_BYTES

VAULT_KEY = bytes(range(32))
# Pinned: changing these breaks every stored attachment.
PASSPORT_ID = "43cd12dbe2fe33069125ae1be6990b287e5ce42bc30696e837732d4a8fd0e9b9"
PASSPORT_CHUNK_ITEMS = ("088333d5dd8ae27b0acfddd8a5b5eeb0", "dcc38d008e8dcbca3b948bcd9135cdc9")


def test_the_attachment_id_is_hmac_sha256_under_the_attachment_id_key() -> None:
    hasher = id_hasher(VAULT_KEY)
    hasher.update(b"passport")
    assert hasher.digest().hex() == PASSPORT_ID
    key = crypto.derive_key(VAULT_KEY, "attachment-id")
    assert hmac.new(key, b"passport", hashlib.sha256).hexdigest() == PASSPORT_ID
    ident = bytes.fromhex(PASSPORT_ID)
    assert (chunk_item(ident, 0).hex(), chunk_item(ident, 1).hex()) == PASSPORT_CHUNK_ITEMS


@pytest.mark.parametrize(("size", "count"), [(0, 0), (1, 1), (CHUNK_BYTES - 1, 1),
                                             (CHUNK_BYTES, 1), (CHUNK_BYTES + 1, 2)])
def test_chunk_count(size: int, count: int) -> None:
    assert chunk_count(size) == count


def test_a_chunk_opens_only_at_its_attachment_position_and_count() -> None:
    ident = bytes.fromhex(PASSPORT_ID)
    body = seal_chunk(VAULT_KEY, ident, 1, 3, b"middle")
    assert len(body) == len(b"middle") + SEALED_OVERHEAD
    assert open_chunk(VAULT_KEY, ident, 1, 3, body) == b"middle"
    for wrong in [(VAULT_KEY, bytes(32), 1, 3), (VAULT_KEY, ident, 0, 3),
                  (VAULT_KEY, ident, 1, 2), (bytes(32), ident, 1, 3)]:
        with pytest.raises(IntegrityError):
            open_chunk(*wrong, body)  # type: ignore[arg-type]


def test_a_full_chunk_record_passes_the_record_and_frame_limits() -> None:
    from tests.sync.helpers import identity
    from wifisync.model.records import Kind, Record, RecordHeader, sign_record
    from wifisync.sync.messages import Batch, decode_message, encode_message

    me = identity(0)
    ident = bytes.fromhex(PASSPORT_ID)
    body = seal_chunk(VAULT_KEY, ident, 0, 1, bytes(CHUNK_BYTES))
    header = RecordHeader(vault=bytes(16), item=chunk_item(ident, 0), kind=Kind.CHUNK,
                          author=me.device_id, seq=2**40, versions={me.device_id: 2**40},
                          time=2**60)
    record = sign_record(me, header, body)
    assert len(record.encoded) <= MAX_RECORD_BYTES
    assert Record.decode(record.encoded) == record
    frame = encode_message(Batch(0, (record.encoded,) * 3))
    assert decode_message(frame) == Batch(0, (record.encoded,) * 3)
