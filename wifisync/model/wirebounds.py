"""A msgpack pre-scan: count objects and nesting before the decoder allocates anything.

``msgpack.unpackb`` bounds each array's length but not how many arrays a frame holds:
4 MiB of nested empty arrays become millions of Python lists (~280 MiB). This walks the
type bytes only (no object is built), stopping at the first limit crossed.
"""

from __future__ import annotations

import struct

from wifisync.errors import ProtocolError

_U8, _U16, _U32 = struct.Struct(">B"), struct.Struct(">H"), struct.Struct(">I")
# Fixed-size types: type byte -> bytes of payload after it.
_FIXED = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,
          0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}
# Types carrying a length then that many bytes: type byte -> struct of the length.
_SIZED = {0xC4: _U8, 0xC5: _U16, 0xC6: _U32, 0xD9: _U8, 0xDA: _U16, 0xDB: _U32,
          0xC7: _U8, 0xC8: _U16, 0xC9: _U32}
_EXT_SIZED = {0xC7, 0xC8, 0xC9}  # one type byte more after the length


def check_shape(data: bytes, max_objects: int, max_depth: int) -> None:
    """Raise :class:`ProtocolError` if ``data`` holds more objects or deeper nesting."""
    view = memoryview(data)
    pos, objects, end = 0, 0, len(view)
    pending = [1]  # objects still to read at each open nesting level
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        pending[-1] -= 1
        if pos >= end:
            raise ProtocolError("frame ends inside a value")
        objects += 1
        if objects > max_objects:
            raise ProtocolError(f"frame holds more than {max_objects} values")
        t = view[pos]
        pos += 1
        children = 0
        if t <= 0x7F or t >= 0xE0:
            continue
        if 0x80 <= t <= 0x8F:
            children = 2 * (t & 0x0F)
        elif 0x90 <= t <= 0x9F:
            children = t & 0x0F
        elif 0xA0 <= t <= 0xBF:
            pos += t & 0x1F
        elif t in _FIXED:
            pos += _FIXED[t]
        elif t in _SIZED:
            fmt = _SIZED[t]
            if pos + fmt.size > end:
                raise ProtocolError("frame ends inside a value")
            pos += fmt.size + fmt.unpack_from(view, pos)[0] + (1 if t in _EXT_SIZED else 0)
        elif t in (0xDC, 0xDE):
            if pos + 2 > end:
                raise ProtocolError("frame ends inside a value")
            children = _U16.unpack_from(view, pos)[0] * (2 if t == 0xDE else 1)
            pos += 2
        elif t in (0xDD, 0xDF):
            if pos + 4 > end:
                raise ProtocolError("frame ends inside a value")
            children = _U32.unpack_from(view, pos)[0] * (2 if t == 0xDF else 1)
            pos += 4
        else:
            raise ProtocolError("frame is not valid msgpack")
        if children:
            if children > max_objects - objects:
                raise ProtocolError(f"frame holds more than {max_objects} values")
            if len(pending) > max_depth:  # pending[0] is the top level, no container
                raise ProtocolError(f"frame nests deeper than {max_depth}")
            pending.append(children)
    if pos > end:
        raise ProtocolError("frame ends inside a value")
