"""Mutated valid inputs for hypothesis, and the contract every decoder is held to.

Budget: ``WIFISYNC_FUZZ_EXAMPLES`` examples per target (a few seconds each by default;
raise it for a longer run, see the README).
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable, Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from wifisync.errors import WifisyncError

EXAMPLES = int(os.environ.get("WIFISYNC_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MiB = 1024 * 1024

# Bytes that make msgpack, zip, JSON and CSV parsers take other paths: huge lengths,
# container headers, quotes and separators.
_MAGIC = [b"\xdd\xff\xff\xff\xff", b"\xdf\x7f\xff\xff\xff", b"\xc6\xff\xff\xff\xff",
          b"\xdb\x7f\xff\xff\xff", b"\x9f", b"\x8f", b"\xc1", b"\xd9\xff", b"\x90" * 64,
          b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b'"', b",", b"\r\n", b"{", b"[", b"]",
          b"}", b"\\u0000", b"null", b"1e999", b"-0", b"\x00", b"\xef\xbb\xbf", b"PK\x03\x04"]


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes], keep: int = 0) -> bytes:
    """One of ``seeds`` with a few byte-level changes (none in its first ``keep`` bytes)."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        start = draw(st.integers(min(keep, len(data)), len(data)))
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "copy", "cut", "magic"]))
        if op == "flip" and start < len(data):
            data[start] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and start < len(data):
            data[start] = draw(st.integers(0, 255))
        elif op == "insert":
            data[start:start] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[start:start + draw(st.integers(1, 16))]
        elif op == "copy":
            length = draw(st.integers(1, 64))
            data[start:start] = data[start:start + length] * draw(st.integers(1, 8))
        elif op == "cut":
            del data[start:]
        elif op == "magic":
            data[start:start] = draw(st.sampled_from(_MAGIC))
    return bytes(data)


def only_our_errors(call: Callable[[], object], memory: int = 32 * MiB) -> None:
    """Run ``call``: it may return or raise a WifisyncError, nothing else, within ``memory``."""
    tracemalloc.start()
    try:
        call()
    except WifisyncError:
        pass
    finally:
        _now, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < memory, f"{peak / MiB:.1f} MiB traced"
