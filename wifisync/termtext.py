"""Text from other devices, made safe to print: control characters shown as escapes.

A member chooses its own name and a refusing peer its reason; printed as they are, an
escape sequence could retitle the terminal, move the cursor or forge lines of output.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, line/paragraph separators and the bidirectional overrides
# (which reorder what follows them on screen).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(text: object) -> str:
    """``text`` as one line a terminal prints literally (``\\x1b``, ``\\n``, ``\\u202e``)."""
    return _UNSAFE.sub(_escape, str(text))
