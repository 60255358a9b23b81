"""The sync wire: message schema, msgpack codec, strict validation and size limits.

A frame is one msgpack array ``[type, field, ...]``. Decoding checks every type, length
and count before anything is built, so a message either arrives whole and well formed or
the session ends with :class:`ProtocolError`. Records travel as their own encoded bytes;
the session decodes them with ``Record.decode`` (strict).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from wifisync.errors import ProtocolError
from wifisync.model.records import (
    DEVICE_ID_BYTES,
    MAX_RECORD_BYTES,
    MAX_VECTOR_ENTRIES,
    RECORD_ID_BYTES,
    VAULT_ID_BYTES,
)
from wifisync.model.wirebounds import check_shape

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 4 * 1024 * 1024
MAX_BATCH_RECORDS = 1024
MAX_BATCH_BYTES = 1024 * 1024  # sum of the records' sizes in one Batch or Push
MAX_IDS_PER_LIST = 8192
MAX_SEEN_ENTRIES = MAX_VECTOR_ENTRIES
MAX_REASON_CHARS = 400
FINGERPRINT_BYTES = 32
# The largest legal frames: an ID_LIST of MAX_IDS_PER_LIST IDs, a HELLO whose seen vector
# has MAX_SEEN_ENTRIES [device, counter] pairs; nesting: [type, [[device, counter], ...]].
MAX_FRAME_VALUES = max(MAX_IDS_PER_LIST, 3 * MAX_SEEN_ENTRIES) + 16
MAX_FRAME_DEPTH = 3
_MAX_UINT = 2**63


class MessageType(enum.IntEnum):
    """The first element of every frame."""

    HELLO = 1
    BATCH = 2
    CHECKPOINT = 3
    DONE = 4
    SUMMARY = 5
    ID_LIST = 6
    PUSH = 7
    ERROR = 8


@dataclass(frozen=True, slots=True)
class Hello:
    """First message both ways: who we are in which vault, what we hold."""

    version: int
    vault_id: bytes
    seen: Mapping[bytes, int]
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class Batch:
    """Part of a round's stream of records the peer lacks, applied atomically on arrival."""

    serial: int
    records: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The receiver committed stream item ``serial`` (records and the seen raise they allow).

    It is also the flow control: a sender keeps at most a few items unacknowledged. The
    seen vector itself does not travel here: the receiver's store raises ``seen[origin]``
    in the same transaction as the batch whenever the origin's log is contiguous, and a
    sender's claim could not be trusted to raise it anyway.
    """

    serial: int


@dataclass(frozen=True, slots=True)
class Done:
    """The sender's stream of this round is over; ``records`` counts what it carried."""

    round: int
    records: int


@dataclass(frozen=True, slots=True)
class Summary:
    """Start of the next round: what the sender holds once both streams were applied.

    ``applied`` counts the records the sender newly stored from this peer in the round
    that ended; when neither side stored anything yet the fingerprints differ, comparing
    seen vectors again would change nothing, so the next round exchanges record IDs.
    """

    round: int
    seen: Mapping[bytes, int]
    fingerprint: bytes
    applied: int


@dataclass(frozen=True, slots=True)
class IdList:
    """A chunk of the sender's sorted held record IDs (fallback after a fingerprint mismatch)."""

    serial: int
    ids: tuple[bytes, ...]
    last: bool


@dataclass(frozen=True, slots=True)
class Push:
    """Records committed (or relayed) while connected, sent at once; no reply."""

    records: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Error:
    """The sender ends the session and says why."""

    reason: str


Message = Hello | Batch | Checkpoint | Done | Summary | IdList | Push | Error


# --- encoding ------------------------------------------------------------------------------


def _pack_seen(seen: Mapping[bytes, int]) -> list[list[Any]]:
    return [[k, v] for k, v in sorted(seen.items())]


def encode_message(msg: Message) -> bytes:
    """The frame for a message (the caller keeps within the limits; decode enforces them)."""
    fields: list[Any]
    match msg:
        case Hello():
            fields = [MessageType.HELLO, msg.version, msg.vault_id, _pack_seen(msg.seen),
                      msg.fingerprint]
        case Batch():
            fields = [MessageType.BATCH, msg.serial, list(msg.records)]
        case Checkpoint():
            fields = [MessageType.CHECKPOINT, msg.serial]
        case Done():
            fields = [MessageType.DONE, msg.round, msg.records]
        case Summary():
            fields = [MessageType.SUMMARY, msg.round, _pack_seen(msg.seen), msg.fingerprint,
                      msg.applied]
        case IdList():
            fields = [MessageType.ID_LIST, msg.serial, list(msg.ids), msg.last]
        case Push():
            fields = [MessageType.PUSH, list(msg.records)]
        case Error():
            fields = [MessageType.ERROR, msg.reason[:MAX_REASON_CHARS]]
    fields[0] = int(fields[0])
    frame: bytes = msgpack.packb(fields, use_bin_type=True)
    return frame


# --- decoding ------------------------------------------------------------------------------


def reason_text(value: object, limit: int = 40) -> str:
    """A peer's value for a log line: its repr, cut short (it may be megabytes)."""
    text = repr(value) if not isinstance(value, list | dict | bytes) else type(value).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _uint(v: object, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < _MAX_UINT:
        raise ProtocolError(f"bad {what}")
    return v


def _bin(v: object, n: int, what: str) -> bytes:
    if not isinstance(v, bytes) or len(v) != n:
        raise ProtocolError(f"bad {what}")
    return v


def _seen(v: object) -> dict[bytes, int]:
    if not isinstance(v, list) or len(v) > MAX_SEEN_ENTRIES:
        raise ProtocolError("bad seen vector")
    out: dict[bytes, int] = {}
    previous = b""
    for entry in v:
        if not isinstance(entry, list) or len(entry) != 2:
            raise ProtocolError("bad seen vector entry")
        device = _bin(entry[0], DEVICE_ID_BYTES, "seen vector device")
        if device <= previous:
            raise ProtocolError("seen vector is not sorted")
        out[device] = _uint(entry[1], "seen vector counter")
        previous = device
    return out


def _records(v: object) -> tuple[bytes, ...]:
    if not isinstance(v, list) or not 1 <= len(v) <= MAX_BATCH_RECORDS:
        raise ProtocolError("bad record count")
    total = 0
    for r in v:
        if not isinstance(r, bytes) or not 0 < len(r) <= MAX_RECORD_BYTES:
            raise ProtocolError("bad record in batch")
        total += len(r)
    if total > MAX_BATCH_BYTES:
        raise ProtocolError("batch too large")
    return tuple(v)


def _ids(v: object) -> tuple[bytes, ...]:
    if not isinstance(v, list) or len(v) > MAX_IDS_PER_LIST:
        raise ProtocolError("bad record ID list")
    previous = b""
    for rid in v:
        _bin(rid, RECORD_ID_BYTES, "record ID")
        if rid <= previous:
            raise ProtocolError("record ID list is not sorted")
        previous = rid
    return tuple(v)


def _arity(parts: list[Any], n: int, what: str) -> None:
    if len(parts) != n:
        raise ProtocolError(f"{what} message has the wrong shape")


def decode_message(frame: bytes) -> Message:
    """Parse and strictly validate one frame; anything else raises :class:`ProtocolError`."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise ProtocolError("frame is not binary")
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}")
    check_shape(bytes(frame), MAX_FRAME_VALUES, MAX_FRAME_DEPTH)  # before anything is built
    try:
        parts = msgpack.unpackb(
            frame, raw=False, use_list=True, strict_map_key=True, max_map_len=0,
            max_ext_len=0, max_str_len=MAX_REASON_CHARS * 4, max_bin_len=MAX_RECORD_BYTES,
            max_array_len=MAX_IDS_PER_LIST,
        )
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError("frame is not valid msgpack") from exc
    if not isinstance(parts, list) or not parts:
        raise ProtocolError("frame is not a message")
    kind = parts[0]
    if not isinstance(kind, int) or isinstance(kind, bool) or \
            kind not in MessageType._value2member_map_:
        raise ProtocolError(f"unknown message type {reason_text(kind)}")
    match MessageType(kind):
        case MessageType.HELLO:
            if len(parts) >= 2 and parts[1] != PROTOCOL_VERSION:
                version = reason_text(parts[1])
                raise ProtocolError(
                    f"peer speaks sync protocol {version}, this device speaks "
                    f"{PROTOCOL_VERSION}; run the same wifisync version on both")
            _arity(parts, 5, "HELLO")
            return Hello(PROTOCOL_VERSION, _bin(parts[2], VAULT_ID_BYTES, "vault ID"),
                         _seen(parts[3]), _bin(parts[4], FINGERPRINT_BYTES, "fingerprint"))
        case MessageType.BATCH:
            _arity(parts, 3, "BATCH")
            return Batch(_uint(parts[1], "serial"), _records(parts[2]))
        case MessageType.CHECKPOINT:
            _arity(parts, 2, "CHECKPOINT")
            return Checkpoint(_uint(parts[1], "serial"))
        case MessageType.DONE:
            _arity(parts, 3, "DONE")
            return Done(_uint(parts[1], "round"), _uint(parts[2], "record count"))
        case MessageType.SUMMARY:
            _arity(parts, 5, "SUMMARY")
            return Summary(_uint(parts[1], "round"), _seen(parts[2]),
                           _bin(parts[3], FINGERPRINT_BYTES, "fingerprint"),
                           _uint(parts[4], "applied count"))
        case MessageType.ID_LIST:
            _arity(parts, 4, "ID_LIST")
            if not isinstance(parts[3], bool):
                raise ProtocolError("bad last flag")
            return IdList(_uint(parts[1], "serial"), _ids(parts[2]), parts[3])
        case MessageType.PUSH:
            _arity(parts, 2, "PUSH")
            return Push(_records(parts[1]))
        case MessageType.ERROR:
            _arity(parts, 2, "ERROR")
            if not isinstance(parts[1], str) or len(parts[1]) > MAX_REASON_CHARS:
                raise ProtocolError("bad error reason")
            return Error(parts[1])
    raise AssertionError("unreachable")  # pragma: no cover
