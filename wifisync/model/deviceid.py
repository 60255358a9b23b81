"""Human-checkable device IDs: SHA-256 of the public key, base32, Luhn check characters.

The format is Syncthing's: 52 base32 characters in four runs of 13, each run followed by
a Luhn mod 32 check character, shown as eight dash-separated groups of seven.
"""

from __future__ import annotations

import base64
import hashlib
import re

from wifisync.errors import WifisyncError

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
ID_BYTES = 32
SHORT_LENGTH = 7


class DeviceIdError(WifisyncError):
    """A device ID string is malformed or its check characters are wrong."""


def luhn32(s: str) -> str:
    """Return the Luhn mod 32 check character of a base32 string."""
    factor, total = 1, 0
    for ch in s:
        addend = factor * ALPHABET.index(ch)
        factor = 1 if factor == 2 else 2
        total += addend // 32 + addend % 32
    return ALPHABET[(32 - total % 32) % 32]


def device_id_for(public_key: bytes) -> bytes:
    """The 32-byte device ID of an Ed25519 public key."""
    return hashlib.sha256(public_key).digest()


def format_device_id(raw: bytes) -> str:
    """Show a 32-byte device ID as ``XXXXXXX-XXXXXXX-...`` (eight groups of seven)."""
    if len(raw) != ID_BYTES:
        raise ValueError("a device ID is 32 bytes")
    b32 = base64.b32encode(raw).decode().rstrip("=")
    runs = [b32[i : i + 13] for i in range(0, 52, 13)]
    checked = "".join(run + luhn32(run) for run in runs)
    return "-".join(checked[i : i + 7] for i in range(0, 56, 7))


def short_device_id(raw: bytes) -> str:
    """The first group of the formatted ID: enough for a person to tell devices apart."""
    return format_device_id(raw)[:SHORT_LENGTH]


def parse_device_id(text: str) -> bytes:
    """Parse a formatted ID (any case, dashes or spaces optional) and verify its checks."""
    s = re.sub(r"[\s-]", "", text.upper())
    if len(s) != 56 or any(c not in ALPHABET for c in s):
        raise DeviceIdError(f"not a device ID: {text!r}")
    runs = [s[i : i + 14] for i in range(0, 56, 14)]
    for run in runs:
        if luhn32(run[:13]) != run[13]:
            raise DeviceIdError(f"device ID check character mismatch: {text!r}")
    b32 = "".join(run[:13] for run in runs)
    return base64.b32decode(b32 + "====")
