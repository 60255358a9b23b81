"""Pairing messages are bounded before msgpack builds anything: count, nesting and size."""

from __future__ import annotations

import struct
import time
import tracemalloc

import msgpack
import pytest

from wifisync.errors import PairingError
from wifisync.pairing import messages
from wifisync.pairing.messages import Hello, VaultOffer, Welcome

MiB = 1024 * 1024


def _packed_map_head(kind: str) -> bytes:
    return b"\x82" + msgpack.packb("t") + msgpack.packb(kind) + msgpack.packb("mac")


@pytest.mark.parametrize("shape", ["wide", "deep"])
def test_a_welcome_of_empty_arrays_is_refused_before_it_is_built(shape: str) -> None:
    n = messages.MAX_MEMBER_MESSAGE - 64
    if shape == "wide":  # one array of four million empty arrays
        body = b"\xdd" + struct.pack(">I", n) + b"\x90" * n
    else:  # arrays nested as deep as the bytes allow
        body = b"\x91" * n + b"\x90"
    data = _packed_map_head("welcome") + body
    tracemalloc.start()
    started = time.process_time()
    try:
        with pytest.raises(PairingError, match="malformed"):
            messages.decode(data, Welcome, messages.MAX_MEMBER_MESSAGE)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * MiB  # before: ~280 MiB of Python lists for the wide one
    assert time.process_time() - started < 1.0


def test_an_offer_with_more_records_than_allowed_is_refused_before_it_is_built() -> None:
    records = [b"r"] * (messages.MAX_OFFER_RECORDS + 1)
    data = msgpack.packb({"vault": b"v" * 16, "records": records})
    with pytest.raises(PairingError, match="malformed vault offer"):
        messages.decode_offer(data)


def test_messages_within_the_bounds_still_decode() -> None:
    hello = Hello(42, b"c" * messages.MAX_CERT_BYTES, b"s" * messages.SPAKE_MESSAGE_BYTES)
    assert messages.decode(messages.encode(hello), Hello, messages.MAX_JOINER_MESSAGE) == hello
    offer = VaultOffer(b"v" * 16, tuple(b"r%d" % i for i in range(messages.MAX_OFFER_RECORDS)))
    assert messages.decode_offer(messages.encode_offer(offer)) == offer


def test_a_hello_in_the_former_key_order_still_decodes() -> None:
    """The typed codec writes ``v`` last in the map; maps are read by key, either order."""
    spake = b"s" * messages.SPAKE_MESSAGE_BYTES
    former = msgpack.packb({"t": "hello", "v": 1, "nameplate": 42, "cert": b"c", "spake": spake})
    assert messages.decode(former, Hello, messages.MAX_JOINER_MESSAGE) == Hello(42, b"c", spake)
