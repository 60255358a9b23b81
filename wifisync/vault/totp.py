"""Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP) from an item's ``totp`` field.

The field holds an ``otpauth://totp/...`` URI (algorithm, digits and period from it), a
KeeOtp string (``key=...&size=...&step=...``) or a bare base32 secret (SHA-1, 6 digits,
30 s). A dozen lines of ``hmac`` rather than a
dependency: exports spell the parameters loosely (lower-case algorithm names, spaces in
secrets), and every value is bounded here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from wifisync.errors import WifisyncError

ALGORITHMS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
MIN_DIGITS, MAX_DIGITS = 6, 10
MIN_PERIOD, MAX_PERIOD = 1, 24 * 3600
MAX_SECRET = 1024


class TotpError(WifisyncError):
    """The ``totp`` field holds nothing that makes a code."""


@dataclass(frozen=True, slots=True)
class Totp:
    """A TOTP generator: shared secret, hash, number of digits and time step."""

    secret: bytes
    algorithm: str = "SHA1"
    digits: int = 6
    period: int = 30

    def code(self, now: float) -> str:
        """The code for Unix time ``now``."""
        return hotp(self.secret, int(now) // self.period, self.digits, self.algorithm)

    def remaining(self, now: float) -> int:
        """Whole seconds the code for ``now`` stays valid."""
        return self.period - int(now) % self.period


def hotp(secret: bytes, counter: int, digits: int = 6, algorithm: str = "SHA1") -> str:
    """RFC 4226 HOTP with dynamic truncation."""
    mac = hmac.new(secret, struct.pack(">Q", counter), ALGORITHMS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def decode_secret(text: str) -> bytes:
    """A base32 secret as exports write it: any case, spaces or dashes, padding optional."""
    clean = "".join(text.split()).replace("-", "").upper().rstrip("=")
    if not clean or len(clean) > MAX_SECRET:
        raise TotpError("the TOTP secret is empty or too long")
    try:
        secret = base64.b32decode(clean + "=" * (-len(clean) % 8))
    except (binascii.Error, ValueError):
        raise TotpError("the TOTP secret is not base32") from None
    if not secret:
        raise TotpError("the TOTP secret is empty")
    return secret


def parse(value: str) -> Totp:
    """A generator from an ``otpauth://totp/`` URI or a bare base32 secret."""
    value = value.strip()
    if not value.lower().startswith("otpauth://") and "&" in value:
        # KeeOtp: key=BASE32&size=DIGITS&step=PERIOD (Bitwarden's export drops "key=")
        if not value.lower().startswith("key="):
            value = "key=" + value
        query = {k.lower(): v[-1] for k, v in parse_qs(value).items()}
        return Totp(decode_secret(query.get("key", "")), "SHA1",
                    _bounded(query.get("size", "6"), "digits", MIN_DIGITS, MAX_DIGITS),
                    _bounded(query.get("step", "30"), "period", MIN_PERIOD, MAX_PERIOD))
    if not value.lower().startswith("otpauth://"):
        return Totp(decode_secret(value))
    parts = urlsplit(value)
    if parts.netloc.lower() != "totp":
        raise TotpError(f"only time-based codes are supported, not {parts.netloc!r}")
    query = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
    if query.get("encoder", "").lower() == "steam":
        raise TotpError("Steam Guard codes are not supported")
    algorithm = query.get("algorithm", "SHA1").upper().replace("-", "")
    if algorithm not in ALGORITHMS:
        raise TotpError(f"unknown TOTP algorithm {algorithm!r} (SHA1, SHA256 or SHA512)")
    digits = _bounded(query.get("digits", "6"), "digits", MIN_DIGITS, MAX_DIGITS)
    period = _bounded(query.get("period", "30"), "period", MIN_PERIOD, MAX_PERIOD)
    return Totp(decode_secret(query.get("secret", "")), algorithm, digits, period)


def _bounded(text: str, name: str, low: int, high: int) -> int:
    try:
        n = int(text)
    except ValueError:
        raise TotpError(f"the TOTP {name} is not a number: {text!r}") from None
    if not low <= n <= high:
        raise TotpError(f"the TOTP {name} must be {low} to {high}, not {n}")
    return n
