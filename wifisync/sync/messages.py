"""The sync wire: message schema and its typed msgpack codec (:mod:`wifisync.model.codec`).

A frame is one msgpack array ``[type, field, ...]``: each message is a msgspec Struct
tagged with its type. Decoding validates every type, length and count while it reads and
before it allocates, so a message either arrives whole and well formed or the session ends
with :class:`ProtocolError`. Records travel as their own encoded bytes; the session
decodes them with ``Record.decode`` (strict).
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from wifisync.errors import ProtocolError
from wifisync.model import codec
from wifisync.model.codec import (
    Bytes16,
    Bytes32,
    UInt,
    Vector,
    check_sorted,
    check_vector,
)
from wifisync.model.records import MAX_RECORD_BYTES

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 4 * 1024 * 1024
MAX_BATCH_RECORDS = 1024
MAX_BATCH_BYTES = 1024 * 1024  # sum of the records' sizes in one Batch or Push
MAX_IDS_PER_LIST = 8192

RecordBytes = Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_RECORD_BYTES)]
Records = Annotated[tuple[RecordBytes, ...],
                    msgspec.Meta(min_length=1, max_length=MAX_BATCH_RECORDS)]
RecordIds = Annotated[tuple[Bytes32, ...], msgspec.Meta(max_length=MAX_IDS_PER_LIST)]


class MessageType(enum.IntEnum):
    """The first element of every frame."""

    HELLO = 1
    BATCH = 2
    CHECKPOINT = 3
    DONE = 4
    SUMMARY = 5
    ID_LIST = 6
    PUSH = 7


class _Frame(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """A message as it travels: ``[type, field, ...]``."""


def _check_records(records: tuple[bytes, ...]) -> None:
    if sum(map(len, records)) > MAX_BATCH_BYTES:
        raise ValueError("batch too large")


class Hello(_Frame, tag=int(MessageType.HELLO), frozen=True):
    """First message both ways: who we are in which vault, what we hold (``seen``, as pairs)."""

    version: int
    vault_id: Bytes16
    seen: Vector
    fingerprint: Bytes32

    def __post_init__(self) -> None:
        check_vector(self.seen, "seen vector")


class Batch(_Frame, tag=int(MessageType.BATCH), frozen=True):
    """Part of a round's stream of records the peer lacks, applied atomically on arrival."""

    serial: UInt
    records: Records

    def __post_init__(self) -> None:
        _check_records(self.records)


class Checkpoint(_Frame, tag=int(MessageType.CHECKPOINT), frozen=True):
    """The receiver committed stream item ``serial`` (records and the seen raise they allow).

    It is also the flow control: a sender keeps a window of items unacknowledged. The
    seen vector itself does not travel here: the receiver's store raises ``seen[origin]``
    in the same transaction as the batch whenever the origin's log is contiguous, and a
    sender's claim could not be trusted to raise it anyway.
    """

    serial: UInt


class Done(_Frame, tag=int(MessageType.DONE), frozen=True):
    """The sender's stream of this round is over; ``records`` counts what it carried."""

    round: UInt
    records: UInt


class Summary(_Frame, tag=int(MessageType.SUMMARY), frozen=True):
    """Start of the next round: what the sender holds once both streams were applied.

    ``applied`` counts the records the sender newly stored from this peer in the round
    that ended; when neither side stored anything yet the fingerprints differ, comparing
    seen vectors again would change nothing, so the next round exchanges record IDs.
    """

    round: UInt
    seen: Vector
    fingerprint: Bytes32
    applied: UInt

    def __post_init__(self) -> None:
        check_vector(self.seen, "seen vector")


class IdList(_Frame, tag=int(MessageType.ID_LIST), frozen=True):
    """A chunk of the sender's sorted held record IDs (fallback after a fingerprint mismatch)."""

    serial: UInt
    ids: RecordIds
    last: bool

    def __post_init__(self) -> None:
        check_sorted(self.ids, "record ID list")


class Push(_Frame, tag=int(MessageType.PUSH), frozen=True):
    """Records committed (or relayed) while connected, sent at once; no reply."""

    records: Records

    def __post_init__(self) -> None:
        _check_records(self.records)


Message = Hello | Batch | Checkpoint | Done | Summary | IdList | Push
_TYPES: dict[int, type[Message]] = {
    MessageType.HELLO: Hello, MessageType.BATCH: Batch, MessageType.CHECKPOINT: Checkpoint,
    MessageType.DONE: Done, MessageType.SUMMARY: Summary, MessageType.ID_LIST: IdList,
    MessageType.PUSH: Push,
}
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)


class _HelloHead(msgspec.Struct, array_like=True):
    """What a HELLO of any version starts with; msgspec skips the rest without building it."""

    kind: int
    version: int


_head = msgspec.msgpack.Decoder(_HelloHead)
# Names of fields in reasons, where the field's own name would read badly.
_NAMES = {"vault_id": "vault ID", "seen": "seen vector", "records": "record",
          "ids": "record ID", "last": "last flag", "applied": "applied count"}


def encode_message(msg: Message) -> bytes:
    """The frame for a message (the caller keeps within the limits; decode enforces them)."""
    return codec.encode(msg)


def decode_message(frame: bytes) -> Message:
    """Parse and strictly validate one frame; anything else raises :class:`ProtocolError`."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise ProtocolError("frame is not binary")
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        msg = _decoder.decode(frame)
    except msgspec.ValidationError as exc:
        raise ProtocolError(_reason(frame, exc)) from exc
    except codec.NOT_MSGPACK as exc:
        raise ProtocolError("frame is not valid msgpack") from exc
    if isinstance(msg, Hello) and msg.version != PROTOCOL_VERSION:
        raise _version_error(msg.version)
    return msg


def _version_error(version: int) -> ProtocolError:
    return ProtocolError(
        f"peer speaks sync protocol {version}, this device speaks "
        f"{PROTOCOL_VERSION}; run the same wifisync version on both")


def _array_head(frame: bytes) -> tuple[int, int] | None:
    """How many values the frame's top-level array announces, and where the first starts."""
    first = frame[0] if frame else None
    if first is not None and 0x90 <= first <= 0x9F:
        return first & 0x0F, 1
    if first in (0xDC, 0xDD):
        start = 3 if first == 0xDC else 5
        if len(frame) >= start:
            return int.from_bytes(frame[1:start], "big"), start
    return None


def _reason(frame: bytes, exc: msgspec.ValidationError) -> str:
    """A short reason for a frame that failed validation (no value of the peer's in it)."""
    reason, path = codec.split_reason(exc)
    head = _array_head(frame)
    if head is None:
        return "frame is not a message"
    length, start = head
    tag = frame[start] if length and len(frame) > start else None
    kind = _TYPES.get(tag) if tag is not None else None  # a positive fixint: every type is one
    if kind is None or tag is None:
        return f"unknown message type ({reason})"
    name = MessageType(tag).name
    if kind is Hello:
        try:
            version = _head.decode(frame).version
        except (msgspec.ValidationError, *codec.NOT_MSGPACK):
            version = PROTOCOL_VERSION
        if version != PROTOCOL_VERSION:
            return str(_version_error(version))
    fields = kind.__struct_fields__
    if length != len(fields) + 1:
        more = "more" if length > len(fields) + 1 else "fewer"
        return (f"{name} message has the wrong shape: it holds {more} than the "
                f"{len(fields) + 1} values it takes ({length})")
    if not path:
        return f"{name}: {reason}"
    field = fields[path[0] - 1] if isinstance(path[0], int) and path[0] >= 1 else "?"
    noun = _NAMES.get(field, field)
    if "array" in reason and "length" in reason:
        noun += " count"
    return f"bad {noun} in {name} ({reason})"

