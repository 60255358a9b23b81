"""Signed, immutable records: header + body + author signature, identified by their hash.

The header is readable by anyone who holds the record (the daemon merges and relays
with it alone); an item's body is XChaCha20-Poly1305 ciphertext under the vault's
payload key with the header bytes as associated data. Membership and vault-key
records carry a signed plaintext body, because devices without the master password
must still know who the members are.
"""

from __future__ import annotations

import contextvars
import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgpack
import msgspec

from wifisync.errors import IntegrityError
from wifisync.model import codec, crypto
from wifisync.model.identity import DeviceIdentity, device_id_of_certificate
from wifisync.model.membercert import checked_member_certificate

FORMAT_VERSION = 1
VAULT_ID_BYTES = 16
ITEM_ID_BYTES = 16
DEVICE_ID_BYTES = 32
RECORD_ID_BYTES = 32
SIGNATURE_BYTES = 64
CHUNK_BYTES = 256 * 1024  # plaintext of one attachment chunk, at most
# A chunk record is its header (one version-vector entry), 256 KiB of plaintext and the
# AEAD's nonce and tag: the slack keeps a full chunk within the limit.
MAX_RECORD_BYTES = CHUNK_BYTES + 4 * 1024
MAX_VECTOR_ENTRIES = codec.MAX_VECTOR_ENTRIES
SIGNING_CONTEXT = b"wifisync/v1/record\x00"
# Records written together (an import) are signed as the leaves of a Merkle tree: one
# Ed25519 signature over the root covers up to TREE_LEAVES records, and each record carries
# the path from its leaf to that root (its ``proof``), so each one is still checked alone.
TREE_CONTEXT = b"wifisync/v1/record-tree\x00"
NODE_CONTEXT = b"wifisync/v1/tree-node\x00"
EMPTY_LEAF = hashlib.sha256(b"wifisync/v1/tree-empty-leaf").digest()
MAX_TREE_DEPTH = 5
TREE_LEAVES = 1 << MAX_TREE_DEPTH
MAX_PROOF_BYTES = 2 + 32 * MAX_TREE_DEPTH
_PROOF_HEAD = 2  # a proof fits a bin 8 value: its type byte and a one-byte length
_SIGNATURE_HEAD = 2  # and so does a signature
_TWO_ITEMS = b"\x92"  # msgpack's head of an array of two
_BIN_HEAD = {0xC4: 1, 0xC5: 2, 0xC6: 4}  # msgpack's bin types: bytes of their length field
assert MAX_PROOF_BYTES < 0x100


class Kind(enum.IntEnum):
    """What a record is about."""

    ITEM = 1
    MEMBER = 2
    VAULT_KEY = 3
    CHUNK = 4  # one encrypted piece of an attachment (wifisync.model.chunks)



VAULT_KEY_ITEM = crypto.sha256(b"wifisync/v1/vault-key-item")[:ITEM_ID_BYTES]


def member_item_id(device_id: bytes) -> bytes:
    """The item ID under which a device's membership lives."""
    return crypto.sha256(b"wifisync/v1/member-item" + device_id)[:ITEM_ID_BYTES]


class RecordHeader(msgspec.Struct, frozen=True, gc=False):
    """Everything needed to merge, order and relay a record without reading its body.

    A Struct, not a dataclass: a receiving daemon builds one per record it takes in, and
    a frozen dataclass sets each field through ``object.__setattr__`` (0.9 against 0.15 us
    a header). Never tracked by the garbage collector: its fields hold no cycle.
    """

    vault: bytes
    item: bytes
    kind: Kind
    author: bytes
    seq: int
    versions: Mapping[bytes, int]
    time: int
    deleted: bool = False

    def encode(self) -> bytes:
        """Canonical bytes: the same header always encodes the same way."""
        vv = [[k, v] for k, v in sorted(self.versions.items())]
        return _pack(
            [FORMAT_VERSION, self.vault, self.item, int(self.kind), self.author, self.seq, vv,
             self.time, self.deleted],
        )

    @classmethod
    def decode(cls, data: bytes) -> RecordHeader:
        """Parse and strictly validate header bytes."""
        if not isinstance(data, bytes):
            raise IntegrityError("record header is not bytes")
        try:
            wire = _header_decoder.decode(data)
        except msgspec.ValidationError as exc:
            raise IntegrityError(f"malformed record header: {exc}") from exc
        except codec.NOT_MSGPACK as exc:
            raise IntegrityError("record header is not valid msgpack") from exc
        if wire.format != FORMAT_VERSION:
            raise IntegrityError(f"record format {wire.format} is not supported")
        pairs = wire.versions
        if len(pairs) == 1:  # most records: only the author's own counter, sorted as it is
            if pairs[0][1] < 1:
                raise IntegrityError("version vector holds a counter below 1")
        else:
            try:
                codec.check_vector(pairs, "version vector", least=1)
            except ValueError as exc:
                raise IntegrityError(str(exc)) from exc
        versions = dict(pairs)
        if versions.get(wire.author) != wire.seq:
            raise IntegrityError("version vector does not carry the author's sequence number")
        # Every field is checked and the vector sorted, so packing what was read again is
        # the canonical-form check, without rebuilding the header.
        if codec.encode(wire) != data:
            raise IntegrityError("record header is not in canonical form")
        return cls(wire.vault, wire.item, wire.kind, wire.author, wire.seq, versions,
                   wire.time, wire.deleted)


class _HeaderWire(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """A record header as it travels (see :meth:`RecordHeader.encode`)."""

    format: int
    vault: codec.Bytes16
    item: codec.Bytes16
    kind: Kind
    author: codec.Bytes32
    seq: Annotated[int, msgspec.Meta(ge=1, le=codec.MAX_UINT)]
    versions: codec.Vector
    time: codec.UInt
    deleted: bool


class _RecordWire(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """A record as it travels and is stored: ``[header bytes, body, signature]``, plus its
    tree ``proof`` when it was signed with others."""

    header: bytes
    body: bytes
    signature: codec.Bytes64
    proof: Annotated[bytes, msgspec.Meta(max_length=MAX_PROOF_BYTES)] = b""


_header_decoder = msgspec.msgpack.Decoder(_HeaderWire)
_sha256 = hashlib.sha256  # a record's ID, as crypto.sha256 hashes it, without its call
_record_decoder = msgspec.msgpack.Decoder(_RecordWire)


def _bin_size(n: int) -> int:
    """Bytes of a bin value of ``n`` bytes in its shortest msgpack form."""
    return n + (2 if n < 0x100 else 3 if n < 0x10000 else 5)


def _offsets(encoded: bytes, body: bytes, proof: bytes) -> tuple[int, int]:
    """Where body and signature start in a record's shortest encoding (counted from the
    end: the signature and the proof each take a bin 8 value)."""
    signature_at = len(encoded) - SIGNATURE_BYTES - (len(proof) + _PROOF_HEAD if proof else 0)
    return signature_at - _SIGNATURE_HEAD - len(body), signature_at


_packer: contextvars.ContextVar[msgpack.Packer] = contextvars.ContextVar("record_packer")


def _pack(obj: object) -> bytes:
    """msgpack with the bin type for bytes, through this context's reusable packer.

    ``msgpack.packb`` builds a new packer (and its buffer) per call, which costs more
    than packing a record; a packer is not thread-safe, and each thread has a context of
    its own, hence a context variable.
    """
    packer = _packer.get(None)
    if packer is None:
        packer = msgpack.Packer(use_bin_type=True)
        _packer.set(packer)
    packed: bytes = packer.pack(obj)
    return packed


@dataclass(frozen=True, slots=True, eq=False)
class Record:
    """A signed record as stored and sent; ``id`` is the SHA-256 of its encoded bytes.

    ``proof`` is empty for a record signed alone; for one signed in a tree it is the
    tree's depth, the record's leaf index and the sibling hashes from leaf to root.
    The parts are cut from ``encoded`` when asked for, not kept beside it: a receiving
    daemon holds thousands of decoded records during a sync, and copies of their parts
    were a third of each one's memory.
    """

    encoded: bytes = field(repr=False)
    id: bytes
    body_at: int = field(repr=False)  # where the body's bytes start in ``encoded``
    signature_at: int = field(repr=False)  # and the signature's
    #: The parsed header. Set by whoever builds the record, or (a record read back from
    #: our store) parsed on first use by :meth:`__getattr__`: sending a 100k-record vault
    #: touches only a few headers, and parsing each one would cost the sender a third of
    #: its work. A slot, not a property: the receive path reads it about 15 times a record.
    header: RecordHeader = field(init=False, repr=False, compare=False)

    @property
    def header_bytes(self) -> bytes:
        """The header as its author encoded (and signed) it."""
        body = self.signature_at - _SIGNATURE_HEAD - self.body_at
        end = self.body_at - (2 if body < 0x100 else 3 if body < 0x10000 else 5)
        return self.encoded[2 + _BIN_HEAD[self.encoded[1]]:end]

    @property
    def body(self) -> bytes:
        """The body: ciphertext for an item, a signed plaintext for membership records."""
        return self.encoded[self.body_at:self.signature_at - _SIGNATURE_HEAD]

    @property
    def signature(self) -> bytes:
        """The author's Ed25519 signature, over this record or the root of its tree."""
        return self.encoded[self.signature_at:self.signature_at + SIGNATURE_BYTES]

    @property
    def proof(self) -> bytes:
        """The path from this record's leaf to its tree's root; empty if signed alone."""
        return self.encoded[self.signature_at + SIGNATURE_BYTES + _PROOF_HEAD:]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self.encoded == other.encoded

    def __hash__(self) -> int:
        return hash(self.encoded)

    def __getattr__(self, name: str) -> RecordHeader:
        """Parse the header when it is first read (only an unset slot comes here)."""
        if name != "header":
            raise AttributeError(name)
        header = _trusted_header(self.header_bytes, self.id)
        object.__setattr__(self, "header", header)
        return header

    def _with_header(self, header: RecordHeader) -> Record:
        """This record, its header set (by :meth:`create` and :meth:`decode`)."""
        object.__setattr__(self, "header", header)
        return self

    @classmethod
    def create(cls, header: RecordHeader, body: bytes, signature: bytes, proof: bytes = b""
               ) -> Record:
        """Assemble a record from its parts."""
        header_bytes = header.encode()
        encoded = _pack([header_bytes, body, signature, proof] if proof
                        else [header_bytes, body, signature])
        return cls(encoded, _sha256(encoded).digest(), *_offsets(encoded, body, proof)
                   )._with_header(header)

    @classmethod
    def decode(cls, encoded: bytes) -> Record:
        """Parse a record's bytes and validate its structure (not yet its signature)."""
        if len(encoded) > MAX_RECORD_BYTES:
            raise IntegrityError("record too large")
        wire = _decode_canonical(encoded)
        if wire.proof and not proof_is_well_formed(wire.proof):
            raise IntegrityError("record's tree proof is malformed")
        header = RecordHeader.decode(wire.header)
        return cls(encoded, _sha256(encoded).digest(), *_offsets(encoded, wire.body, wire.proof)
                   )._with_header(header)

    @classmethod
    def decode_trusted(cls, encoded: bytes) -> Record:
        """Rebuild a record our own store validated when it arrived (no header re-checks).

        The header is parsed when first used; bytes that do not parse then raise
        :class:`IntegrityError` like any other corrupt record.
        """
        wire = _decode_canonical(encoded, "record has the wrong shape")
        return cls(encoded, _sha256(encoded).digest(), *_offsets(encoded, wire.body, wire.proof))

    def own_message(self) -> bytes:
        """The record's own message: what its signature is over, or (signed in a tree) what
        its leaf hashes; :func:`signed_message` of its header and body, whose msgpack
        array of two is the start of this record's own array of three or four."""
        return SIGNING_CONTEXT + _TWO_ITEMS + self.encoded[1:self.signature_at - _SIGNATURE_HEAD]

    def signed_message(self) -> bytes:
        """The bytes the author's signature is over: the record's own message, or the root
        of its tree that the record's proof leads to."""
        message = self.own_message()
        if not self.proof:
            return message
        if not proof_is_well_formed(self.proof):  # only a store altered after the fact
            raise IntegrityError(f"record {self.id.hex()[:16]} has a malformed tree proof")
        return tree_message(self.proof[0], _root(crypto.sha256(message), self.proof))


def _decode_canonical(encoded: bytes, error: str | None = None) -> _RecordWire:
    """Decode a record's parts, refusing any that took a longer form than it needs
    (``error``: the one message for whatever is wrong, else a message per fault).

    Decoded whole and typed, a record is canonical exactly when its size is the sum of
    the shortest forms of its parts (an empty proof is written by leaving it out); a
    :class:`Record` cuts its parts out of its bytes by those sizes.
    """
    try:
        wire = _record_decoder.decode(encoded)
    except (msgspec.ValidationError, *codec.NOT_MSGPACK) as exc:
        raise IntegrityError(error or f"record is not valid msgpack of [header, body, "
                             f"signature(, proof)]: {exc}") from exc
    if len(encoded) != 1 + _bin_size(len(wire.header)) + _bin_size(len(wire.body)) \
            + _SIGNATURE_HEAD + SIGNATURE_BYTES + (_bin_size(len(wire.proof)) if wire.proof else 0):
        raise IntegrityError(error or "record is not in canonical form")
    return wire


def _trusted_header(header_bytes: bytes, record_id: bytes) -> RecordHeader:
    """Parse header bytes our store validated on arrival (no canonical re-checks)."""
    try:
        w = _header_decoder.decode(header_bytes)
    except (msgspec.ValidationError, *codec.NOT_MSGPACK) as exc:  # the store was altered
        raise IntegrityError(f"record {record_id.hex()[:16]} in the store is corrupt") from exc
    return RecordHeader(w.vault, w.item, w.kind, w.author, w.seq, dict(w.versions), w.time,
                        w.deleted)


def signed_message(header_bytes: bytes, body: bytes) -> bytes:
    """Domain-separated message an author signs."""
    return SIGNING_CONTEXT + _pack([header_bytes, body])


def sign_record(identity: DeviceIdentity, header: RecordHeader, body: bytes) -> Record:
    """Sign a header and body as ``identity`` (which must be the header's author)."""
    if header.author != identity.device_id:
        raise ValueError("a device signs only its own records")
    header_bytes = header.encode()
    return Record.create(header, body, identity.sign(signed_message(header_bytes, body)))


def sign_records(identity: DeviceIdentity, parts: Sequence[tuple[RecordHeader, bytes]]
                 ) -> list[Record]:
    """Sign records written together: a tree per ``TREE_LEAVES`` of them, one signature
    each (a lone record is signed by itself, as :func:`sign_record` does)."""
    if any(header.author != identity.device_id for header, _body in parts):
        raise ValueError("a device signs only its own records")
    records: list[Record] = []
    for start in range(0, len(parts), TREE_LEAVES):
        group = parts[start:start + TREE_LEAVES]
        if len(group) == 1:
            records.append(sign_record(identity, *group[0]))
            continue
        leaves = [crypto.sha256(signed_message(h.encode(), body)) for h, body in group]
        depth = (len(group) - 1).bit_length()
        levels = [leaves + [EMPTY_LEAF] * ((1 << depth) - len(leaves))]
        while len(levels[-1]) > 1:
            below = levels[-1]
            levels.append([_node(below[i], below[i + 1]) for i in range(0, len(below), 2)])
        signature = identity.sign(tree_message(depth, levels[-1][0]))
        for index, (header, body) in enumerate(group):
            path = b"".join(levels[level][(index >> level) ^ 1] for level in range(depth))
            records.append(Record.create(header, body, signature,
                                         bytes((depth, index)) + path))
    return records


def tree_message(depth: int, root: bytes) -> bytes:
    """Domain-separated message an author signs for a tree of ``2**depth`` leaves."""
    return TREE_CONTEXT + bytes((depth,)) + root


def proof_is_well_formed(proof: bytes) -> bool:
    """A depth of 1 to MAX_TREE_DEPTH, a leaf index inside the tree, one hash per level."""
    if len(proof) < 2:
        return False
    depth, index = proof[0], proof[1]
    return 1 <= depth <= MAX_TREE_DEPTH and index < 1 << depth and len(proof) == 2 + 32 * depth


def _root(leaf: bytes, proof: bytes) -> bytes:
    """The root a well-formed proof leads to from ``leaf``."""
    depth, index = proof[0], proof[1]
    node = leaf
    for level in range(depth):
        sibling = proof[2 + 32 * level:34 + 32 * level]
        node = _node(sibling, node) if index >> level & 1 else _node(node, sibling)
    return node


def _node(left: bytes, right: bytes) -> bytes:
    """An inner node of a record tree (its own context: no leaf hashes the same bytes)."""
    return hashlib.sha256(NODE_CONTEXT + left + right).digest()


# --- bodies -----------------------------------------------------------------------------


def payload_key(vault_key: bytes) -> bytes:
    """The key item payloads are sealed with; the holder of the vault key derives it once."""
    return crypto.derive_key(vault_key, "record-payload")


def seal_item_body(key: bytes, header: RecordHeader, payload: Mapping[str, Any]) -> bytes:
    """Encrypt an item payload bound to its header, with the :func:`payload_key`."""
    plaintext = _pack(dict(payload))
    return crypto.seal(key, plaintext, header.encode())


def open_item_body(key: bytes, record: Record) -> dict[str, Any]:
    """Decrypt and parse an item payload (:func:`payload_key`); tampering raises
    :class:`IntegrityError`."""
    plaintext = crypto.open_sealed(key, record.body, record.header_bytes)
    try:
        payload = msgpack.unpackb(plaintext, raw=False)
    except Exception as exc:
        raise IntegrityError("item payload is not valid msgpack") from exc
    if not isinstance(payload, dict):
        raise IntegrityError("item payload is not a map")
    return payload


ROLE_MEMBER = "member"  # holds the vault key: may write items, tombstones and the wrapped key
ROLE_RELAY = "relay"  # stores and relays only (a NAS without the master password)
ROLES = (ROLE_MEMBER, ROLE_RELAY)


@dataclass(frozen=True, slots=True)
class Membership:
    """Body of a MEMBER record: a device's certificate, name and role, or a revocation.

    A revocation (``revoked``) carries ``held``: per device, the highest sequence number of
    that device's records the author held when it wrote it (its signed causal knowledge;
    see :mod:`wifisync.model.membership` for how revocations are evaluated).
    """

    cert_der: bytes
    name: str
    revoked: bool = False
    held: Mapping[bytes, int] = field(default_factory=dict)
    role: str = ROLE_MEMBER

    @property
    def device_id(self) -> bytes:
        """The device this membership is about."""
        return device_id_of_certificate(self.cert_der)

    def encode(self) -> bytes:
        """Canonical body bytes."""
        return _pack({"cert": self.cert_der, "name": self.name, "role": self.role,
                      "revoked": self.revoked,
                      "held": [[k, v] for k, v in sorted(self.held.items())]})

    @classmethod
    def decode(cls, body: bytes) -> Membership:
        """Parse and validate a MEMBER body."""
        try:
            wire = _membership_decoder.decode(body)
        except (msgspec.ValidationError, *codec.NOT_MSGPACK) as exc:
            raise IntegrityError(f"malformed membership body: {exc}") from exc
        if wire.role not in ROLES:
            raise IntegrityError("bad membership role")
        if wire.held and not wire.revoked:
            raise IntegrityError("bad held vector")
        try:
            codec.check_vector(wire.held, "held vector")
        except ValueError as exc:
            raise IntegrityError(str(exc)) from exc
        m = cls(wire.cert, wire.name, wire.revoked, dict(wire.held), wire.role)
        checked_member_certificate(wire.cert)  # Ed25519, CA:FALSE, names its own key
        if m.encode() != body:
            raise IntegrityError("membership body is not in canonical form")
        return m


class _MembershipWire(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A MEMBER body as it travels (see :meth:`Membership.encode`)."""

    cert: Annotated[bytes, msgspec.Meta(max_length=4096)]
    name: Annotated[str, msgspec.Meta(max_length=200)]
    role: Annotated[str, msgspec.Meta(max_length=16)]
    revoked: bool
    held: codec.Vector


_membership_decoder = msgspec.msgpack.Decoder(_MembershipWire)


@dataclass(frozen=True, slots=True)
class WrappedVaultKey:
    """Body of a VAULT_KEY record: the vault key wrapped under the master password."""

    kdf: crypto.KdfParams
    wrapped: bytes

    def encode(self) -> bytes:
        """Canonical body bytes."""
        return _pack({"kdf": self.kdf.to_dict(), "wrapped": self.wrapped})

    @classmethod
    def decode(cls, body: bytes) -> WrappedVaultKey:
        """Parse and validate a VAULT_KEY body."""
        try:
            wire = _vault_key_decoder.decode(body)
        except (msgspec.ValidationError, *codec.NOT_MSGPACK) as exc:
            raise IntegrityError(f"malformed vault-key body: {exc}") from exc
        kdf = {"alg": wire.kdf.alg, "salt": wire.kdf.salt, "ops": wire.kdf.ops,
               "mem": wire.kdf.mem}
        return cls(crypto.KdfParams.from_dict(kdf), wire.wrapped)


class _KdfWire(msgspec.Struct, frozen=True):
    """The key-derivation parameters as they travel (:meth:`crypto.KdfParams.to_dict`)."""

    alg: Annotated[str, msgspec.Meta(max_length=32)]
    salt: Annotated[bytes, msgspec.Meta(max_length=64)]
    ops: int
    mem: int


class _VaultKeyWire(msgspec.Struct, frozen=True):
    """A VAULT_KEY body as it travels (keys it does not name are skipped, never built)."""

    kdf: _KdfWire
    wrapped: Annotated[bytes, msgspec.Meta(max_length=256)]


_vault_key_decoder = msgspec.msgpack.Decoder(_VaultKeyWire)
