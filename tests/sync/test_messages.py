"""The wire codec: round trips, limits, and fuzzing that only ever yields ProtocolError."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wifisync.errors import ProtocolError
from wifisync.model.codec import vector
from wifisync.sync.messages import (
    MAX_BATCH_RECORDS,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Batch,
    Checkpoint,
    Done,
    Hello,
    IdList,
    Message,
    Push,
    Summary,
    decode_message,
    encode_message,
)

DEVICE = bytes(range(32))
SAMPLES: list[Message] = [
    Hello(PROTOCOL_VERSION, bytes(16), vector({DEVICE: 7, bytes(31) + b"\xff": 1}), bytes(32)),
    Batch(3, (b"\x93abc", b"\x01")),
    Checkpoint(3),
    Done(2, 1024),
    Summary(1, vector({DEVICE: 9}), b"\x01" * 32, 5),
    IdList(4, (b"\x00" * 32, b"\x01" * 32), True),
    Push((b"record",)),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg: Message) -> None:
    assert decode_message(encode_message(msg)) == msg


def test_frames_are_the_bytes_msgpack_gives() -> None:
    """The typed codec kept the wire: each frame is msgpack's packing of [type, fields...]."""
    hello, batch = SAMPLES[0], SAMPLES[1]
    assert isinstance(hello, Hello) and isinstance(batch, Batch)
    assert encode_message(hello) == msgpack.packb(
        [1, PROTOCOL_VERSION, bytes(16), [[bytes(31) + b"\xff", 1], [DEVICE, 7]], bytes(32)],
        use_bin_type=True)
    assert encode_message(batch) == msgpack.packb([2, 3, [b"\x93abc", b"\x01"]],
                                                  use_bin_type=True)
    assert encode_message(Checkpoint(2**40)) == msgpack.packb([3, 2**40])


@pytest.mark.parametrize("fields, match", [
    ([2, 0, []], "record count"),
    ([2, 0, [b"r"] * (MAX_BATCH_RECORDS + 1)], "msgpack|record count"),
    ([2, True, [b"r"]], "serial"),
    ([2, -1, [b"r"]], "serial"),
    ([3], "shape"),
    ([6, 0, [b"\x01" * 32, b"\x00" * 32], True], "sorted"),
    ([1, PROTOCOL_VERSION, bytes(15), [], bytes(32)], "vault ID"),
    ([1, PROTOCOL_VERSION, bytes(16), [[DEVICE, 1], [DEVICE, 2]], bytes(32)], "sorted"),
    ([99], "unknown message type"),
    ({"type": 1}, "msgpack|not a message"),
])
def test_invalid_messages_are_refused(fields: object, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_message(msgpack.packb(fields, use_bin_type=True))


def test_oversized_frame_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_message(b"\x00" * (MAX_FRAME_BYTES + 1))


def test_batch_over_the_byte_limit_is_refused() -> None:
    fields = [2, 0, [b"x" * (200 * 1024)] * 6]
    with pytest.raises(ProtocolError, match="too large"):
        decode_message(msgpack.packb(fields, use_bin_type=True))


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decodes_or_protocol_error(frame: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_message(frame)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_only_raise_protocol_error(frame: bytes) -> None:
    _decodes_or_protocol_error(frame)


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_frames_only_raise_protocol_error(msg: Message, data: st.DataObject) -> None:
    frame = bytearray(encode_message(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(0, len(frame) - 1)))
        if op == "flip" and frame:
            frame[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del frame[pos:]
        else:
            frame[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    _decodes_or_protocol_error(bytes(frame))


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=40)
    | st.text(max_size=10) | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=12,
)


@FUZZ
@given(st.integers(0, 9), st.lists(msgpack_values, max_size=6))
def test_well_formed_msgpack_of_the_wrong_shape_only_raises_protocol_error(
        kind: int, fields: list[object]) -> None:
    _decodes_or_protocol_error(msgpack.packb([kind, *fields], use_bin_type=True))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_session_fed_mutated_frames_raises_only_protocol_error(data: st.DataObject) -> None:
    from tests.sync.helpers import Wire, household
    from tests.sync.test_session import add_items

    a, b = household(2)
    add_items(a, 3)
    wire = Wire(a, b)
    victim = data.draw(st.integers(0, 5))
    for n in range(200):
        if not wire.queue:
            break
        frame = wire.queue.popleft()
        if n == victim:
            raw = bytearray(frame.data)
            pos = data.draw(st.integers(0, len(raw) - 1))
            raw[pos] ^= 1 << data.draw(st.integers(0, 7))
            frame.data = bytes(raw)
        try:
            wire.deliver_one(frame)
        except ProtocolError:
            return


def _nested_empty_arrays(size: int) -> bytes:
    """[1, [[], [], ...], [[], ...], ...]: millions of lists from a frame within the size limit."""
    inner = b"\xdc" + (8000).to_bytes(2, "big") + b"\x90" * 8000
    count = size // len(inner)
    return b"\xdc" + (count + 1).to_bytes(2, "big") + b"\x01" + inner * count


def test_a_frame_of_nested_empty_arrays_is_refused_before_it_is_built() -> None:
    """4 MiB of empty arrays cost 278 MiB and 1.35 s before; now a quick ProtocolError."""
    import resource
    import time

    frame = _nested_empty_arrays(MAX_FRAME_BYTES - 100)
    assert len(frame) <= MAX_FRAME_BYTES
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    with pytest.raises(ProtocolError, match="more than"):
        decode_message(frame)
    assert time.process_time() - started < 0.5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 16 * 1024  # KiB


@pytest.mark.parametrize("frame", [
    b"\x91" * 10 + b"\x01",  # nested deeper than any message
    b"\x92\x01\xdd\xff\xff\xff\xff",  # an array header promising 4 billion values
    b"\x92\x01\xc6\xff\xff\xff\xff",  # a bin header promising 4 GiB
])
def test_nesting_and_promised_counts_are_bounded(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_message(frame)


def test_an_unknown_type_of_megabytes_is_not_copied_into_the_reason() -> None:
    frame = msgpack.packb(["x" * 1000, 1])
    with pytest.raises(ProtocolError) as caught:
        decode_message(frame)
    assert len(str(caught.value)) < 100
