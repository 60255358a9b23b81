"""A record is three byte strings: anything nested is refused before msgpack builds it."""

from __future__ import annotations

import struct
import tracemalloc

import msgpack
import pytest

from wifisync.errors import IntegrityError
from wifisync.model.records import MAX_RECORD_BYTES, Membership, Record


def test_a_record_of_empty_arrays_is_refused_before_it_is_built() -> None:
    n = MAX_RECORD_BYTES - 8
    data = b"\xdd" + struct.pack(">I", n) + b"\x90" * n  # 262k empty lists when built
    tracemalloc.start()
    try:
        with pytest.raises(IntegrityError, match="not valid msgpack"):
            Record.decode(data)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024  # before: 17 MiB and ~75 ms per record, four per frame


def test_a_member_body_of_empty_arrays_is_refused_before_it_is_built() -> None:
    """A MEMBER body is read before its signature is checked: a peer fills it at will."""
    n = MAX_RECORD_BYTES - 64
    body = b"\x85" + msgpack.packb("cert") + b"\xdd" + struct.pack(">I", n) + b"\x90" * n
    tracemalloc.start()
    try:
        with pytest.raises(IntegrityError, match="malformed membership"):
            Membership.decode(body)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024  # before: 19 MiB of lists per record
