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


def test_a_request_reads_back_as_it_was_written() -> None:
    pairs = [(b"s" * 64, b"message"), (b"short", b""), (b"", b"m" * 3000)]
    n, key, read = sigcheck.decode_request(sigcheck.encode_request(7, b"k" * 32, pairs))
    assert (n, key, list(read)) == (7, b"k" * 32, pairs)
    assert sigcheck.decode_answer(sigcheck.encode_answer(7, b"\x01\x00")) == (7, b"\x01\x00")


@pytest.mark.parametrize("cut", [-1, 1], ids=["shorter", "longer"])
def test_a_request_out_of_shape_ends_the_helper(cut: int) -> None:
    """Whatever a broken stream says is not answered: the daemon then checks itself."""
    payload = sigcheck.encode_request(1, b"k" * 32, [(b"s" * 64, b"message")])
    payload = payload[:cut] if cut < 0 else payload + b"x"
    frames = io.BytesIO()
    sigcheck.write_frame(frames, payload)
    frames.seek(0)
    answers = io.BytesIO()
    with pytest.raises(ValueError, match="request"):
        sigcheck.serve(frames, answers)
    assert answers.getvalue() == b""


def test_a_key_of_the_wrong_length_holds_for_nothing() -> None:
    """libsodium reads 32 bytes of the key whatever it is given: a short one is refused first."""
    a, _b = household(2)
    [good] = [a.store.heads(i)[0] for i in add_items(a, 1)]
    pair = [(good.signature, good.signed_message())]
    key = a.identity.public_key
    assert sigcheck.check_all(key, pair) == b"\x01"
    assert sigcheck.check_all(key[:31], pair) == b"\x00"
    assert sigcheck.check_all(key + b"\x00", pair) == b"\x00"


def test_a_helper_loads_libsodium_and_neither_msgpack_nor_the_daemon() -> None:
    helpers = SignatureHelpers(1)
    try:
        helpers.submit(b"k" * 32, [(b"s" * 64, b"m")]).result(timeout=30)
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

    def pairs() -> Iterator[tuple[bytes, bytes]]:
        readers.append(threading.current_thread().name)
        yield b"s" * 64, b"m"

    helpers = SignatureHelpers(1)
    try:
        assert helpers.submit(b"k" * 32, pairs()).result(timeout=30) == b"\x00"
    finally:
        helpers.close()
    assert readers and threading.current_thread().name not in readers


def test_pairs_that_cannot_be_read_fail_closed() -> None:
    def pairs() -> Iterator[tuple[bytes, bytes]]:
        yield b"s" * 64, b"m"
        raise ValueError("unreadable record")

    helpers = SignatureHelpers(1)
    try:
        with pytest.raises(ValueError, match="unreadable"):
            helpers.submit(b"k" * 32, pairs()).result(timeout=30)
    finally:
        helpers.close()
