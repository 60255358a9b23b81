"""Records have one canonical encoding, strict validation, and any changed byte is detected."""

from __future__ import annotations

import tracemalloc
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wifisync.errors import IntegrityError
from wifisync.model import crypto
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import (
    FORMAT_VERSION,
    MAX_RECORD_BYTES,
    MAX_VECTOR_ENTRIES,
    VAULT_KEY_ITEM,
    Kind,
    Membership,
    Record,
    RecordHeader,
    WrappedVaultKey,
    member_item_id,
    open_item_body,
    seal_item_body,
    sign_record,
    sign_records,
    signed_message,
)
from wifisync.model.verifier import signature_holds

VAULT = b"V" * 16
ITEM = b"I" * 16
OTHER = b"\x01" * 32


@pytest.fixture(scope="module")
def me() -> DeviceIdentity:
    return DeviceIdentity.generate()


def header_of(me: DeviceIdentity, seq: int = 3, **over: Any) -> RecordHeader:
    fields: dict[str, Any] = dict(
        vault=VAULT, item=ITEM, kind=Kind.ITEM, author=me.device_id, seq=seq,
        versions={me.device_id: seq, OTHER: 7}, time=123456789, deleted=False,
    )
    fields.update(over)
    return RecordHeader(**fields)


def raw_header(me: DeviceIdentity, **over: Any) -> list[Any]:
    """The msgpack list a header encodes to, for building malformed variants."""
    parts: dict[str, Any] = dict(
        fmt=FORMAT_VERSION, vault=VAULT, item=ITEM, kind=1, author=me.device_id, seq=3,
        vv=sorted([[me.device_id, 3], [OTHER, 7]]), time=123456789, deleted=False,
    )
    parts.update(over)
    return list(parts.values())


def pack(obj: Any) -> bytes:
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


# --- header encoding -------------------------------------------------------------------


def test_header_round_trip(me: DeviceIdentity) -> None:
    h = header_of(me)
    assert RecordHeader.decode(h.encode()) == h
    assert h.encode() == pack(raw_header(me))


@settings(max_examples=100, deadline=None)
@given(
    seq=st.integers(1, 2**63 - 1),
    others=st.dictionaries(st.binary(min_size=32, max_size=32), st.integers(1, 2**63 - 1),
                           max_size=5),
    time=st.integers(0, 2**63 - 1),
    deleted=st.booleans(),
    kind=st.sampled_from(Kind),
)
def test_header_round_trip_any_valid(
    me: DeviceIdentity, seq: int, others: dict[bytes, int], time: int, deleted: bool, kind: Kind
) -> None:
    versions = {**others, me.device_id: seq}
    h = header_of(me, seq=seq, versions=versions, time=time, deleted=deleted, kind=kind)
    data = h.encode()
    assert RecordHeader.decode(data) == h
    assert RecordHeader.decode(data).encode() == data


def test_header_encoding_ignores_dict_order(me: DeviceIdentity) -> None:
    a = header_of(me, versions={me.device_id: 3, OTHER: 7})
    b = header_of(me, versions={OTHER: 7, me.device_id: 3})
    assert a.encode() == b.encode()


def test_non_canonical_integer_width_is_refused(me: DeviceIdentity) -> None:
    canonical = header_of(me).encode()
    # The same list with seq packed as uint64 (0xcf) instead of a fixint.
    parts = raw_header(me)
    head = pack(parts[:5])[1:]  # drop the array marker of the 5-element prefix
    tail = pack(parts[6:])[1:]
    wide = bytes([0x99]) + head + b"\xcf" + (3).to_bytes(8, "big") + tail
    assert msgpack.unpackb(wide) == msgpack.unpackb(canonical)
    assert wide != canonical
    with pytest.raises(IntegrityError, match="canonical"):
        RecordHeader.decode(wide)


def test_unsorted_version_vector_is_refused(me: DeviceIdentity) -> None:
    vv = sorted([[me.device_id, 3], [OTHER, 7]], reverse=True)
    with pytest.raises(IntegrityError):
        RecordHeader.decode(pack(raw_header(me, vv=vv)))


def test_duplicate_version_vector_entry_is_refused(me: DeviceIdentity) -> None:
    vv = [[me.device_id, 3], [me.device_id, 3]]
    with pytest.raises(IntegrityError):
        RecordHeader.decode(pack(raw_header(me, vv=vv)))


def test_trailing_bytes_are_refused(me: DeviceIdentity) -> None:
    with pytest.raises(IntegrityError):
        RecordHeader.decode(header_of(me).encode() + b"\x00")


BAD_FIELDS: list[tuple[str, Any]] = [
    ("fmt", 2), ("fmt", 0), ("fmt", "1"),
    ("vault", b"V" * 15), ("vault", b"V" * 17), ("vault", "V" * 16), ("vault", None),
    ("item", b"I" * 15), ("item", b"I" * 17), ("item", 16),
    ("kind", 0), ("kind", 5), ("kind", "item"), ("kind", True), ("kind", 1.0),
    ("author", b"\x02" * 31), ("author", b"\x02" * 33), ("author", "a" * 32),
    ("seq", 0), ("seq", -1), ("seq", True), ("seq", 3.0), ("seq", "3"), ("seq", 2**63),
    ("time", -1), ("time", 1.5), ("time", None), ("time", False), ("time", 2**64 - 1),
    ("deleted", 0), ("deleted", 1), ("deleted", None), ("deleted", b""),
    ("vv", {}), ("vv", None), ("vv", [[b"\x01" * 32, 3]]),
    ("vv", [[b"\x01" * 31, 3]]), ("vv", [["x" * 32, 3]]),
]


@pytest.mark.parametrize(("name", "value"), BAD_FIELDS)
def test_every_header_field_is_validated(me: DeviceIdentity, name: str, value: Any) -> None:
    with pytest.raises(IntegrityError):
        RecordHeader.decode(pack(raw_header(me, **{name: value})))


@pytest.mark.parametrize(
    "entry_change",
    [
        lambda e: [e[0]],
        lambda e: [e[0], e[1], 1],
        lambda e: [e[0], 0],
        lambda e: [e[0], -2],
        lambda e: [e[0], True],
        lambda e: [e[0], "7"],
        lambda e: (e[0], e[1]),  # packs as a list too: still fine structurally
        lambda e: {"k": e[0]},
        lambda e: e[0],
    ],
)
def test_version_vector_entries_are_validated(me: DeviceIdentity, entry_change: Any) -> None:
    vv = sorted([[me.device_id, 3], [OTHER, 7]])
    idx = next(i for i, e in enumerate(vv) if e[0] == OTHER)
    vv[idx] = entry_change(vv[idx])
    data = pack(raw_header(me, vv=vv))
    if isinstance(vv[idx], tuple):
        assert RecordHeader.decode(data).versions[OTHER] == 7
        return
    with pytest.raises(IntegrityError):
        RecordHeader.decode(data)


def test_version_vector_must_carry_author_seq(me: DeviceIdentity) -> None:
    with pytest.raises(IntegrityError, match="author"):
        RecordHeader.decode(pack(raw_header(me, vv=[[OTHER, 7]])))
    wrong = sorted([[me.device_id, 4], [OTHER, 7]])
    with pytest.raises(IntegrityError, match="author"):
        RecordHeader.decode(pack(raw_header(me, vv=wrong)))


def test_version_vector_size_is_bounded(me: DeviceIdentity) -> None:
    vv = sorted([[i.to_bytes(32, "big"), 1] for i in range(1, MAX_VECTOR_ENTRIES + 1)]
                + [[me.device_id, 3]])
    with pytest.raises(IntegrityError):
        RecordHeader.decode(pack(raw_header(me, vv=vv)))


@pytest.mark.parametrize(
    "data", [b"", b"\xc1", pack({"a": 1}), pack([1, 2, 3]), pack(b"x"), b"\x99\x01"]
)
def test_garbage_header_is_refused(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        RecordHeader.decode(data)


def test_header_with_wrong_length_is_refused(me: DeviceIdentity) -> None:
    with pytest.raises(IntegrityError):
        RecordHeader.decode(pack(raw_header(me)[:8]))
    with pytest.raises(IntegrityError):
        RecordHeader.decode(pack([*raw_header(me), None]))


# --- signed records --------------------------------------------------------------------


def test_record_round_trip_and_id(me: DeviceIdentity) -> None:
    r = sign_record(me, header_of(me), b"body")
    again = Record.decode(r.encoded)
    assert again == r and again.id == r.id == crypto.sha256(r.encoded)
    assert again.header == r.header
    assert Record.decode_trusted(r.encoded) == r
    assert Record.decode_trusted(r.encoded).header == r.header
    assert signature_holds(again, me.public_key)


def test_same_content_gives_same_bytes_and_id(me: DeviceIdentity) -> None:
    # Ed25519 signatures are deterministic, so signing twice gives one record ID.
    a = sign_record(me, header_of(me), b"body")
    b = sign_record(me, header_of(me, versions={OTHER: 7, me.device_id: 3}), b"body")
    assert a.encoded == b.encoded and a.id == b.id


def test_signature_of_another_device_fails(me: DeviceIdentity) -> None:
    r = sign_record(me, header_of(me), b"body")
    assert not signature_holds(r, DeviceIdentity.generate().public_key)


def test_a_device_signs_only_its_own_records(me: DeviceIdentity) -> None:
    other = DeviceIdentity.generate()
    with pytest.raises(ValueError):
        sign_record(other, header_of(me), b"body")


def test_a_forged_author_fails_verification(me: DeviceIdentity) -> None:
    """Claiming another author: the signature is checked against that author's key."""
    victim = DeviceIdentity.generate()
    h = header_of(me, author=victim.device_id, versions={victim.device_id: 3})

    forged = Record.create(h, b"body", me.sign(signed_message(h.encode(), b"body")))
    decoded = Record.decode(forged.encoded)
    assert not signature_holds(decoded, victim.public_key)


@pytest.mark.parametrize(
    "outer",
    [
        lambda hb, body, sig: [hb, body],
        lambda hb, body, sig: [hb, body, sig, b""],
        lambda hb, body, sig: [hb.decode("latin-1"), body, sig],
        lambda hb, body, sig: [hb, body.decode("latin-1"), sig],
        lambda hb, body, sig: [hb, body, sig[:-1]],
        lambda hb, body, sig: [hb, body, sig + b"\x00"],
        lambda hb, body, sig: [hb, body, None],
        lambda hb, body, sig: {"h": hb, "b": body, "s": sig},
    ],
)
def test_malformed_record_shapes_are_refused(me: DeviceIdentity, outer: Any) -> None:
    r = sign_record(me, header_of(me), b"body")
    with pytest.raises(IntegrityError):
        Record.decode(pack(outer(r.header_bytes, r.body, r.signature)))


def test_non_canonical_outer_encoding_is_refused(me: DeviceIdentity) -> None:
    r = sign_record(me, header_of(me), b"body")
    # body packed as bin16 instead of bin8
    hb = pack(r.header_bytes)
    sig = pack(r.signature)
    wide = b"\x93" + hb + b"\xc5" + len(r.body).to_bytes(2, "big") + r.body + sig
    assert msgpack.unpackb(wide) == msgpack.unpackb(r.encoded)
    with pytest.raises(IntegrityError, match="canonical"):
        Record.decode(wide)


def test_a_store_record_in_a_longer_form_is_refused_not_misread(me: DeviceIdentity) -> None:
    """A record's parts are cut from its bytes by their shortest forms: bytes from an
    altered store that take a longer form are refused, never cut at the wrong places."""
    r = sign_record(me, header_of(me), b"body")
    wide = b"\x93" + pack(r.header_bytes) + b"\xc5" + len(r.body).to_bytes(2, "big") + r.body \
        + pack(r.signature)
    with pytest.raises(IntegrityError, match="wrong shape"):
        Record.decode_trusted(wide)


@pytest.mark.parametrize("body_size", [0, 1, 0xFF, 0x100, 0xFFFF, 0x10000])
@pytest.mark.parametrize("in_tree", [False, True])
def test_parts_read_back_from_the_bytes(me: DeviceIdentity, body_size: int,
                                        in_tree: bool) -> None:
    """Header, body, signature and proof as created, whatever width their lengths take."""
    body = bytes(range(256)) * (body_size // 256) + bytes(body_size % 256)
    headers = [header_of(me, seq=s, versions={me.device_id: s}) for s in (1, 2)]
    made = sign_records(me, [(h, body) for h in headers]) if in_tree \
        else [sign_record(me, headers[0], body)]
    r = made[-1]
    for again in (r, Record.decode(r.encoded), Record.decode_trusted(r.encoded)):
        assert (again.header_bytes, again.body) == (headers[len(made) - 1].encode(), body)
        assert again.signature == r.signature and len(again.signature) == 64
        assert again.proof == (r.proof if in_tree else b"") and bool(again.proof) is in_tree
        assert again == r and hash(again) == hash(r)
        assert again.own_message() == signed_message(again.header_bytes, again.body)
        assert signature_holds(again, me.public_key)
    assert pack([r.header_bytes, r.body, r.signature, *([r.proof] if in_tree else [])]) \
        == r.encoded


def test_a_decoded_record_keeps_no_copy_of_its_parts(me: DeviceIdentity) -> None:
    """A receiving daemon holds thousands of decoded records during a sync: each holds its
    bytes, ID and parsed header, not a second copy of header, body and signature."""
    records = sign_records(me, [(header_of(me, seq=s, versions={me.device_id: s}),
                                 bytes(500)) for s in range(1, 201)])
    encoded = [r.encoded for r in records]
    tracemalloc.start()
    try:
        held = [Record.decode(e) for e in encoded]
        size, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_record = size / len(held)
    assert per_record < len(encoded[0]), per_record  # with copies: about twice as much


def test_oversized_record_is_refused(me: DeviceIdentity) -> None:
    r = sign_record(me, header_of(me), b"x" * MAX_RECORD_BYTES)
    with pytest.raises(IntegrityError, match="too large"):
        Record.decode(r.encoded)


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x93", pack(None), pack([b"", b"", b""])])
def test_garbage_record_is_refused(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        Record.decode(data)


# --- encrypted item bodies -------------------------------------------------------------


def test_item_body_round_trip_and_binding(me: DeviceIdentity) -> None:
    key = crypto.random_bytes(32)
    h = header_of(me)
    body = seal_item_body(key, h, {"attrs": {"title": ["secret title", 1]}})
    assert b"secret title" not in body
    r = sign_record(me, h, body)
    assert open_item_body(key, r)["attrs"]["title"] == ["secret title", 1]
    with pytest.raises(IntegrityError):
        open_item_body(crypto.random_bytes(32), r)
    # The same ciphertext under another item's header does not open.
    moved = sign_record(me, header_of(me, item=b"J" * 16), body)
    with pytest.raises(IntegrityError):
        open_item_body(key, moved)
    older = sign_record(me, header_of(me, seq=2, versions={me.device_id: 2}), body)
    with pytest.raises(IntegrityError):
        open_item_body(key, older)


def test_item_body_must_be_a_map(me: DeviceIdentity) -> None:
    key = crypto.random_bytes(32)
    h = header_of(me)
    for plaintext in (pack([1, 2]), b"\xc1"):
        body = crypto.seal(key, plaintext, h.encode())
        with pytest.raises(IntegrityError):
            open_item_body(key, sign_record(me, h, body))


def _outcome(encoded: bytes, me: DeviceIdentity, key: bytes) -> dict[str, Any]:
    r = Record.decode(encoded)
    if not signature_holds(r, me.public_key):
        raise IntegrityError("bad signature")
    return open_item_body(key, r)


def test_every_single_byte_change_is_detected(me: DeviceIdentity) -> None:
    key = crypto.random_bytes(32)
    h = header_of(me, versions={me.device_id: 3})
    r = sign_record(me, h, seal_item_body(key, h, {"attrs": {"title": ["t", 1]}}))
    assert _outcome(r.encoded, me, key) == {"attrs": {"title": ["t", 1]}}
    assert len(r.encoded) < 300
    accepted = 0
    for pos in range(len(r.encoded)):
        for delta in (0x01, 0x80, 0xFF):
            tampered = bytearray(r.encoded)
            tampered[pos] ^= delta
            try:
                _outcome(bytes(tampered), me, key)
            except IntegrityError:
                continue
            accepted += 1
    assert accepted == 0


def test_every_single_byte_change_of_a_tombstone_is_detected(me: DeviceIdentity) -> None:
    r = sign_record(me, header_of(me, deleted=True), b"")
    for pos in range(len(r.encoded)):
        tampered = bytearray(r.encoded)
        tampered[pos] ^= 0x01
        with pytest.raises(IntegrityError):
            if not signature_holds(Record.decode(bytes(tampered)), me.public_key):
                raise IntegrityError("bad signature")


# --- plaintext bodies ------------------------------------------------------------------


def test_membership_round_trip(me: DeviceIdentity) -> None:
    m = Membership(me.cert_der, "laptop")
    assert Membership.decode(m.encode()) == m
    assert m.device_id == me.device_id
    revoked = Membership(me.cert_der, "laptop", revoked=True, held={me.device_id: 12})
    assert Membership.decode(revoked.encode()) == revoked
    relay = Membership(me.cert_der, "nas", role="relay")
    assert Membership.decode(relay.encode()).role == "relay"


@pytest.mark.parametrize(
    "body",
    [
        {"cert": b"x", "name": "n"},
        {"cert": "c", "name": "n", "role": "member", "revoked": False, "held": []},
        {"cert": b"x" * 5000, "name": "n", "role": "member", "revoked": False, "held": []},
        {"cert": None, "name": 3, "role": "member", "revoked": False, "held": []},
        {"cert": b"not a cert", "name": "n", "role": "member", "revoked": False, "held": []},
        {"cert": "CERT", "name": "n" * 201, "role": "member", "revoked": False, "held": []},
        {"cert": "CERT", "name": "n", "role": "admin", "revoked": False, "held": []},
        {"cert": "CERT", "name": "n", "role": "member", "revoked": 1, "held": []},
        {"cert": "CERT", "name": "n", "role": "member", "revoked": False, "held": [[b"d" * 32, 1]]},
        {"cert": "CERT", "name": "n", "role": "member", "revoked": True, "held": [[b"d" * 32, -1]]},
        {"cert": "CERT", "name": "n", "role": "member", "revoked": True, "held": [[b"d", 1]]},
        {"cert": "CERT", "name": "n", "role": "member", "revoked": True,
         "held": [[b"d" * 32, 1], [b"d" * 32, 2]]},
        {"cert": "CERT", "name": "n", "role": "member", "revoked": True,
         "held": [[b"d" * 32, 2**63]]},
        {"cert": "CERT", "name": "n", "role": "member", "revoked": False, "held": [],
         "extra": 1},
        {"name": "n", "cert": "CERT", "role": "member", "revoked": False, "held": []},
    ],
)
def test_membership_validation(me: DeviceIdentity, body: dict[str, Any]) -> None:
    if body.get("cert") == "CERT":
        body = dict(body, cert=me.cert_der)
    with pytest.raises(IntegrityError):
        Membership.decode(pack(body))
    with pytest.raises(IntegrityError):
        Membership.decode(b"\xc1")


def test_wrapped_vault_key_round_trip_and_validation() -> None:
    w = WrappedVaultKey(crypto.KdfParams.fresh(1, 8192), b"w" * 72)
    assert WrappedVaultKey.decode(w.encode()) == w
    for body in (pack([1]), pack({"kdf": 1, "wrapped": b""}),
                 pack({"kdf": w.kdf.to_dict(), "wrapped": b"w" * 300}),
                 pack({"kdf": w.kdf.to_dict(), "wrapped": "w"}), b"\xc1"):
        with pytest.raises(IntegrityError):
            WrappedVaultKey.decode(body)


def test_fixed_item_ids_are_distinct_and_stable(me: DeviceIdentity) -> None:
    assert member_item_id(me.device_id) == member_item_id(me.device_id)
    assert member_item_id(me.device_id) != member_item_id(OTHER)
    assert member_item_id(me.device_id) != VAULT_KEY_ITEM
    # Pinned: every device must compute the same fixed item IDs.
    assert VAULT_KEY_ITEM.hex() == "613374a02f02897c2904f5343c77d5ef"
    assert member_item_id(bytes(32)).hex() == "0aeafc2fefb74bc58efd8f81582f05e9"
