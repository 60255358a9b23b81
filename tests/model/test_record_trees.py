"""Records signed together: one signature over a Merkle tree, each record checked alone."""

from __future__ import annotations

import hashlib
import os
import uuid

import msgpack
import pytest

from wifisync.errors import IntegrityError
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import (
    EMPTY_LEAF,
    MAX_TREE_DEPTH,
    NODE_CONTEXT,
    SIGNING_CONTEXT,
    TREE_CONTEXT,
    TREE_LEAVES,
    Kind,
    Record,
    RecordHeader,
    sign_record,
    sign_records,
    signed_message,
    tree_message,
)
from wifisync.model.verifier import check_claims, signature_holds

VAULT = b"V" * 16


@pytest.fixture(scope="module")
def me() -> DeviceIdentity:
    return DeviceIdentity.generate()


def parts_of(me: DeviceIdentity, n: int, first_seq: int = 1) -> list[tuple[RecordHeader, bytes]]:
    out = []
    for seq in range(first_seq, first_seq + n):
        header = RecordHeader(VAULT, uuid.uuid4().bytes, Kind.ITEM, me.device_id, seq,
                              {me.device_id: seq}, 5 << 16, False)
        out.append((header, os.urandom(40)))
    return out


def unpacked(record: Record) -> list[bytes]:
    parts: list[bytes] = msgpack.unpackb(record.encoded)
    return parts


def repacked(*parts: bytes) -> Record:
    """Whatever a relay could send: the parts packed canonically, then decoded as a peer does."""
    return Record.decode(msgpack.packb(list(parts), use_bin_type=True))


@pytest.mark.parametrize("n", [2, 3, 5, TREE_LEAVES, TREE_LEAVES + 1, 70])
def test_records_signed_together_hold_each_alone(me: DeviceIdentity, n: int) -> None:
    records = sign_records(me, parts_of(me, n))
    assert len(records) == n
    for r in records:
        again = Record.decode(r.encoded)
        assert again == r and again.id == r.id
        assert signature_holds(again, me.public_key)
    signatures = {r.signature for r in records if r.proof}
    assert len(signatures) == -(-n // TREE_LEAVES) - (n % TREE_LEAVES == 1)
    # a tree left with a single record is signed alone, as sign_record signs it
    if n % TREE_LEAVES == 1:
        assert records[-1].proof == b""


def test_a_lone_record_is_signed_as_sign_record_signs_it(me: DeviceIdentity) -> None:
    [(header, body)] = parts_of(me, 1)
    assert sign_records(me, [(header, body)]) == [sign_record(me, header, body)]


def test_the_tree_shape_is_pinned() -> None:
    """Known answer: leaf, node and signed-message hashes of fixed inputs (the format)."""
    leaves = [hashlib.sha256(signed_message(bytes([i]), b"body")).digest() for i in range(3)]
    left = hashlib.sha256(NODE_CONTEXT + leaves[0] + leaves[1]).digest()
    right = hashlib.sha256(NODE_CONTEXT + leaves[2] + EMPTY_LEAF).digest()
    root = hashlib.sha256(NODE_CONTEXT + left + right).digest()
    assert (SIGNING_CONTEXT, TREE_CONTEXT, NODE_CONTEXT) == (
        b"wifisync/v1/record\x00", b"wifisync/v1/record-tree\x00", b"wifisync/v1/tree-node\x00")
    assert EMPTY_LEAF.hex() == hashlib.sha256(b"wifisync/v1/tree-empty-leaf").hexdigest()
    assert tree_message(2, root) == TREE_CONTEXT + b"\x02" + root
    assert hashlib.sha256(tree_message(2, root)).hexdigest() == (
        "aaf88c39d0f846f898967f83dc46c5c093dc87b206c26155931797a125d5ad9d")


def test_sign_records_builds_that_tree(me: DeviceIdentity) -> None:
    """Leaves in seq order, padded with the empty leaf, siblings from the leaf up."""
    records = sign_records(me, parts_of(me, 3))
    leaves = [hashlib.sha256(r.own_message()).digest() for r in records] + [EMPTY_LEAF]
    left = hashlib.sha256(NODE_CONTEXT + leaves[0] + leaves[1]).digest()
    right = hashlib.sha256(NODE_CONTEXT + leaves[2] + leaves[3]).digest()
    root = hashlib.sha256(NODE_CONTEXT + left + right).digest()
    assert [r.proof for r in records] == [
        b"\x02\x00" + leaves[1] + right, b"\x02\x01" + leaves[0] + right,
        b"\x02\x02" + leaves[3] + left]
    assert {r.signed_message() for r in records} == {tree_message(2, root)}
    assert all(signature_holds(r, me.public_key) for r in records)


def test_every_single_byte_change_is_refused(me: DeviceIdentity) -> None:
    record = sign_records(me, parts_of(me, 3))[2]  # depth 2, beside the empty leaf
    accepted = 0
    for pos in range(len(record.encoded)):
        tampered = bytearray(record.encoded)
        tampered[pos] ^= 0x01
        try:
            if signature_holds(Record.decode(bytes(tampered)), me.public_key):
                accepted += 1
        except IntegrityError:
            continue
    assert accepted == 0


def test_a_proof_moved_between_records_or_trees_holds_for_nothing(me: DeviceIdentity) -> None:
    tree1 = sign_records(me, parts_of(me, 4))
    tree2 = sign_records(me, parts_of(me, 4, first_seq=5))
    h, b, s, p = unpacked(tree1[0])
    for other in (tree1[1], tree2[0]):
        _h, _b, s2, p2 = unpacked(other)
        assert not signature_holds(repacked(h, b, s2, p2), me.public_key)
        assert not signature_holds(repacked(h, b, s, p2), me.public_key)
    moved = bytes([p[0], 1]) + p[2:]  # another leaf's index
    assert not signature_holds(repacked(h, b, s, moved), me.public_key)


def test_a_tree_signature_and_a_lone_signature_never_stand_for_each_other(
        me: DeviceIdentity) -> None:
    h, b, s, p = unpacked(sign_records(me, parts_of(me, 2))[0])
    assert not signature_holds(repacked(h, b, s), me.public_key)  # proof dropped
    lone = sign_record(me, *parts_of(me, 1)[0])
    h1, b1, s1 = unpacked(lone)
    assert not signature_holds(repacked(h1, b1, s1, p), me.public_key)  # proof added


@pytest.mark.parametrize("proof", [
    b"\x00\x00",  # depth 0
    bytes([MAX_TREE_DEPTH + 1, 0]) + b"h" * 32 * (MAX_TREE_DEPTH + 1),  # too deep
    b"\x02\x04" + b"h" * 64,  # index outside a tree of 4
    b"\x02\x00" + b"h" * 63,  # a hash short
    b"\x02\x00" + b"h" * 96,  # a hash too many
    b"\x01",
])
def test_a_malformed_proof_is_refused_on_decode(me: DeviceIdentity, proof: bytes) -> None:
    h, b, s, _p = unpacked(sign_records(me, parts_of(me, 2))[0])
    with pytest.raises(IntegrityError):
        repacked(h, b, s, proof)


def test_an_empty_proof_must_be_left_out(me: DeviceIdentity) -> None:
    h, b, s = unpacked(sign_record(me, *parts_of(me, 1)[0]))
    with pytest.raises(IntegrityError, match="canonical"):
        repacked(h, b, s, b"")


def test_one_check_per_tree_and_still_each_record_alone(me: DeviceIdentity) -> None:
    """The per-tree memo is exact: a record altered inside a good tree still fails."""
    records = sign_records(me, parts_of(me, TREE_LEAVES))
    h, _b, s, p = unpacked(records[7])
    altered = repacked(h, b"another body", s, p)
    claims = [(r, me.public_key) for r in [*records[:7], altered, *records[8:]]]
    assert [ok for _id, ok in check_claims(claims)] == [True] * 7 + [False] + [True] * 24


def test_only_the_author_signs_a_tree(me: DeviceIdentity) -> None:
    other = DeviceIdentity.generate()
    with pytest.raises(ValueError):
        sign_records(other, parts_of(me, 2))
    records = sign_records(me, parts_of(me, 2))
    assert not any(signature_holds(r, other.public_key) for r in records)
