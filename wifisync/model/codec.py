"""The one MessagePack codec of every wire: typed fields that validate while they decode.

Sync frames, pairing messages, records and their MEMBER and VAULT_KEY bodies are msgspec
Structs built from the field types below. msgspec checks each type, length and count as
it reads, before it allocates: an array header promising a billion values, a bin header
promising 4 GiB, or arrays where a number belongs fail at their header, and values it
skips (keys a Struct does not name) are walked, never built. So no position a peer fills
is untyped, and no pre-scan is needed. Encoding gives the bytes
``msgpack.packb(..., use_bin_type=True)`` gives: smallest integer and length forms, bin
for bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, TypeVar

import msgspec

from wifisync.errors import WifisyncError

MAX_UINT = 2**63 - 1
MAX_VECTOR_ENTRIES = 1024  # devices in a version, seen or held vector

UInt = Annotated[int, msgspec.Meta(ge=0, le=MAX_UINT)]
Bytes16 = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
Bytes32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
Bytes64 = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
#: A device -> counter vector as it travels: [[device ID, n], ...] sorted by device ID.
Vector = Annotated[tuple[tuple[Bytes32, UInt], ...],
                   msgspec.Meta(max_length=MAX_VECTOR_ENTRIES)]

T = TypeVar("T")
#: What msgspec raises for bytes that are not MessagePack (or not UTF-8 where text belongs).
NOT_MSGPACK = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_encoder = msgspec.msgpack.Encoder()


def encode(value: object) -> bytes:
    """MessagePack bytes of a Struct (or plain values)."""
    return _encoder.encode(value)


def vector(counters: Mapping[bytes, int]) -> tuple[tuple[bytes, int], ...]:
    """A vector in its wire form: pairs sorted by device ID."""
    return tuple(sorted(counters.items()))


def check_sorted(keys: Sequence[bytes], what: str) -> None:
    """Raise ``ValueError`` unless ``keys`` strictly increase (sorted, no duplicates).

    Raised from a Struct's ``__post_init__``, msgspec reports it as a validation error.
    """
    for i in range(1, len(keys)):
        if keys[i - 1] >= keys[i]:
            raise ValueError(f"{what} is not sorted")


def check_vector(pairs: Sequence[tuple[bytes, int]], what: str, least: int = 0) -> None:
    """Raise ``ValueError`` unless a vector is sorted and each counter is at least ``least``."""
    check_sorted([device for device, _n in pairs], what)
    if least and any(n < least for _device, n in pairs):
        raise ValueError(f"{what} holds a counter below {least}")


def decode(decoder: msgspec.msgpack.Decoder[T], data: bytes, error: type[WifisyncError],
           what: str) -> T:
    """Decode and validate ``data``; anything malformed raises ``error`` with a short reason."""
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise error(f"malformed {what}: {exc}") from exc
    except NOT_MSGPACK as exc:
        raise error(f"{what} is not valid msgpack") from exc


def split_reason(exc: msgspec.ValidationError) -> tuple[str, list[Any]]:
    """msgspec's reason and the path it names, as keys: "$[2][0]" -> [2, 0], "$.v" -> ["v"].

    The reason never quotes the peer's value (only its type, or a small integer).
    """
    text = str(exc)
    reason, _sep, where = text.partition(" - at `")
    path: list[Any] = []
    for part in where.rstrip("`").removeprefix("$").replace("]", "").replace(".", "[").split("["):
        if part:
            path.append(int(part) if part.isdigit() else part)
    return reason, path
