"""Attachment chunks: how a file becomes signed CHUNK records a relay can store but not read.

An attachment is named by its content: its ID is HMAC-SHA256 of the plaintext under a key
derived from the vault key, so the same file attached twice is the same attachment, and a
device without the vault key (a relay) cannot confirm a guess of what a file holds. The
plaintext is cut into pieces of at most ``CHUNK_BYTES``; piece ``i`` of ``n`` is sealed with
XChaCha20-Poly1305 under the vault's chunk key with the attachment ID, ``i`` and ``n`` as
associated data (a chunk cannot be moved to another attachment or position), and stored as
the body of a CHUNK record whose item ID is derived from the attachment ID and ``i``: each
chunk is its own one-version item, written once and never edited.
"""

from __future__ import annotations

import hashlib
import hmac

from wifisync.model import crypto
from wifisync.model.records import CHUNK_BYTES, ITEM_ID_BYTES, Kind, Record

ATTACHMENT_ID_BYTES = 32
SEALED_OVERHEAD = crypto.NONCE_SIZE + 16  # nonce + Poly1305 tag
_ITEM_CONTEXT = b"wifisync/v1/chunk-item"
_AAD_CONTEXT = b"wifisync/v1/chunk"


def chunk_key(vault_key: bytes) -> bytes:
    """The key that seals attachment chunks."""
    return crypto.derive_key(vault_key, "attachment-chunk")


def id_key(vault_key: bytes) -> bytes:
    """The key of the hash that names attachments."""
    return crypto.derive_key(vault_key, "attachment-id")


def id_hasher(vault_key: bytes) -> hmac.HMAC:
    """A streaming hash whose digest is the ID of the bytes fed to it."""
    return hmac.new(id_key(vault_key), digestmod=hashlib.sha256)


def chunk_count(size: int) -> int:
    """How many chunks an attachment of ``size`` bytes has (none when empty)."""
    return -(-size // CHUNK_BYTES)


def chunk_item(attachment_id: bytes, index: int) -> bytes:
    """The item ID under which chunk ``index`` of an attachment lives."""
    return crypto.sha256(_ITEM_CONTEXT + attachment_id + index.to_bytes(4, "big"))[:ITEM_ID_BYTES]


def _aad(attachment_id: bytes, index: int, count: int) -> bytes:
    return _AAD_CONTEXT + attachment_id + index.to_bytes(4, "big") + count.to_bytes(4, "big")


def seal_chunk(vault_key: bytes, attachment_id: bytes, index: int, count: int,
               plaintext: bytes) -> bytes:
    """The body of chunk ``index`` of ``count``."""
    return crypto.seal(chunk_key(vault_key), plaintext, _aad(attachment_id, index, count))


def open_chunk(vault_key: bytes, attachment_id: bytes, index: int, count: int,
               body: bytes) -> bytes:
    """The plaintext of a chunk body; one altered or misplaced raises ``IntegrityError``."""
    return crypto.open_sealed(chunk_key(vault_key), body, _aad(attachment_id, index, count))


def chunk_record_ok(record: Record) -> bool:
    """What a device without the vault key can check of a CHUNK record.

    A chunk is written once by one author and never edited or deleted, so its version
    vector is its author's entry alone, and its body a sealed chunk at most.
    """
    h = record.header
    return (h.kind == Kind.CHUNK and not h.deleted and len(h.versions) == 1
            and SEALED_OVERHEAD <= len(record.body) <= CHUNK_BYTES + SEALED_OVERHEAD)
