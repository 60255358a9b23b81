"""The signature helper's program: its frames, its checks, and how little it loads."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sync.helpers import household
from tests.sync.test_session import add_items
from wifisync.daemon import sigcheck
from wifisync.daemon.sighelpers import SignatureHelpers
from wifisync.model import records as records_module
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Kind, Record, RecordHeader, sign_record, sign_records
from wifisync.model.verifier import signature_holds


def test_a_request_reads_back_as_each_records_parts() -> None:
    """The helper cuts signature, own message and proof as the model's Record does."""
    me = DeviceIdentity.generate()
    parts = [(RecordHeader(b"V" * 16, bytes([i]) * 16, Kind.ITEM, me.device_id, i,
                           {me.device_id: i}, 5 << 16, False), b"body %d" % i * i)
             for i in range(1, 5)]
    records = [sign_record(me, *parts[0]), *sign_records(me, parts[1:])]
    claims = [(r.encoded, r.signature_at) for r in records]
    out_of_shape = [(b"r" * 100, 2), (b"r" * 100, 37), (b"", 0)]
    n, key, read = sigcheck.decode_request(
        sigcheck.encode_request(7, b"k" * 32, claims + out_of_shape))
    assert (n, key) == (7, b"k" * 32)
    assert list(read) == [(r.signature, r.own_message(), r.proof) for r in records] + [
        (b"", b"", b"")] * 3
    assert sigcheck.decode_answer(sigcheck.encode_answer(7, b"\x01\x00")) == (7, b"\x01\x00")


@pytest.mark.parametrize("cut", [-1, 1], ids=["shorter", "longer"])
def test_a_request_out_of_shape_ends_the_helper(cut: int) -> None:
    """Whatever a broken stream says is not answered: the daemon then checks itself."""
    payload = sigcheck.encode_request(1, b"k" * 32, [(b"r" * 100, 10)])
    payload = payload[:cut] if cut < 0 else payload + b"x"
    frames = io.BytesIO()
    sigcheck.write_frame(frames, payload)
    frames.seek(0)
    answers = io.BytesIO()
    with pytest.raises(ValueError, match="request"):
        sigcheck.serve(frames, answers)
    assert answers.getvalue() == b""


def test_the_helper_applies_the_rule_of_the_model() -> None:
    """Lone records, trees and their forgeries: the helper's flags are signature_holds'."""
    me = DeviceIdentity.generate()
    parts = [(RecordHeader(b"V" * 16, bytes([i]) * 16, Kind.ITEM, me.device_id, i,
                           {me.device_id: i}, 5 << 16, False), b"body %d" % i)
             for i in range(1, 12)]
    lone = sign_record(me, *parts[0])
    tree = sign_records(me, parts[1:])
    h = tree[3]
    records = [lone, *tree,
               Record.create(h.header, b"other", h.signature, h.proof),  # a leaf altered
               Record.create(h.header, h.body, h.signature, tree[4].proof),  # a proof moved
               Record.create(h.header, h.body, h.signature),  # the proof dropped
               Record.create(h.header, h.body, lone.signature, h.proof)]  # another signature
    claims = [sigcheck.claim_parts(r.encoded, r.signature_at) for r in records]
    expected = bytes(signature_holds(r, me.public_key) for r in records)
    assert expected == b"\x01" * 11 + b"\x00" * 4
    assert sigcheck.check_all(me.public_key, claims) == expected
    malformed = [(h.signature, h.own_message(), h.proof[:-1]),
                 (h.signature, h.own_message(), b"\x02")]
    assert sigcheck.check_all(me.public_key, malformed) == b"\x00\x00"
    assert (sigcheck.TREE_CONTEXT, sigcheck.NODE_CONTEXT, sigcheck.MAX_TREE_DEPTH) == (
        records_module.TREE_CONTEXT, records_module.NODE_CONTEXT, records_module.MAX_TREE_DEPTH)
    assert sigcheck.SIGNING_CONTEXT == records_module.SIGNING_CONTEXT


def test_a_key_of_the_wrong_length_holds_for_nothing() -> None:
    """libsodium reads 32 bytes of the key whatever it is given: a short one is refused first."""
    a, _b = household(2)
    [good] = [a.store.heads(i)[0] for i in add_items(a, 1)]
    pair = [(good.signature, good.signed_message(), b"")]
    key = a.identity.public_key
    assert sigcheck.check_all(key, pair) == b"\x01"
    assert sigcheck.check_all(key[:31], pair) == b"\x00"
    assert sigcheck.check_all(key + b"\x00", pair) == b"\x00"


def test_a_helper_loads_libsodium_and_neither_msgpack_nor_the_daemon() -> None:
    helpers = SignatureHelpers(1)
    try:
        helpers.submit(b"k" * 32, [(b"r" * 100, 10)], 1).result(timeout=30)
        [helper] = helpers._helpers
        maps = Path(f"/proc/{helper._proc.pid}/maps")
        if not maps.exists():
            pytest.skip("no /proc on this system")
        loaded = maps.read_text()
        assert "_sodium" in loaded
        assert "msgpack" not in loaded and "_ssl" not in loaded and "_sqlite3" not in loaded
    finally:
        helpers.close()


def test_a_request_is_framed_by_the_writer_not_the_caller() -> None:
    """Batches waiting for a busy helper hold no second copy of their bytes."""
    readers: list[str] = []

    def claims() -> Iterator[tuple[bytes, int]]:
        readers.append(threading.current_thread().name)
        yield b"r" * 100, 10

    helpers = SignatureHelpers(1)
    try:
        assert helpers.submit(b"k" * 32, claims(), 1).result(timeout=30) == b"\x00"
    finally:
        helpers.close()
    assert readers and threading.current_thread().name not in readers


def test_claims_that_cannot_be_read_fail_closed() -> None:
    def claims() -> Iterator[tuple[bytes, int]]:
        yield b"r" * 100, 10
        raise ValueError("unreadable record")

    helpers = SignatureHelpers(1)
    try:
        with pytest.raises(ValueError, match="unreadable"):
            helpers.submit(b"k" * 32, claims(), 1).result(timeout=30)
    finally:
        helpers.close()
