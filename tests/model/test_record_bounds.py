"""A record is three byte strings: anything nested is refused before msgpack builds it."""

from __future__ import annotations

import struct
import tracemalloc

import pytest

from wifisync.errors import IntegrityError
from wifisync.model.records import MAX_RECORD_BYTES, Record


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
