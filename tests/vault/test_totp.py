"""RFC 6238 test vectors (appendix B) and the parsing of otpauth URIs and base32 secrets."""

from __future__ import annotations

import base64

import pytest

from wifisync.vault.totp import Totp, TotpError, hotp, parse

# RFC 6238 appendix B: ASCII seeds of 20, 32 and 64 bytes, 8 digits, 30 s steps.
SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("now", "sha1", "sha256", "sha512"), VECTORS)
def test_rfc_6238_vectors(now: int, sha1: str, sha256: str, sha512: str) -> None:
    for algorithm, want in (("SHA1", sha1), ("SHA256", sha256), ("SHA512", sha512)):
        secret = base64.b32encode(SEEDS[algorithm]).decode()
        uri = f"otpauth://totp/RFC:test?secret={secret}&algorithm={algorithm}&digits=8"
        assert parse(uri).code(now) == want, algorithm


def test_rfc_4226_hotp_vectors() -> None:
    want = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489"]
    assert [hotp(SEEDS["SHA1"], n) for n in range(10)] == want


def test_bare_secrets_and_loose_spelling() -> None:
    assert parse("jbsw y3dp-ehpk 3pxp") == Totp(base64.b32decode("JBSWY3DPEHPK3PXP"))
    t = parse("OTPAUTH://TOTP/x?SECRET=JBSWY3DPEHPK3PXP&algorithm=sha-256&period=60&digits=7")
    assert (t.algorithm, t.period, t.digits) == ("SHA256", 60, 7)
    assert t.remaining(120) == 60 and t.remaining(179) == 1


@pytest.mark.parametrize(("value", "reason"), [
    ("otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP&counter=1", "time-based"),
    ("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&algorithm=MD5", "algorithm"),
    ("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits=99", "digits"),
    ("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&period=0", "period"),
    ("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&period=abc", "period"),
    ("otpauth://totp/x?issuer=nobody", "empty"),
    ("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&encoder=steam", "Steam"),
    ("not base32 at all!", "base32"),
    ("A" * 5000, "too long"),
])
def test_what_makes_no_code_is_one_clear_error(value: str, reason: str) -> None:
    with pytest.raises(TotpError, match=reason):
        parse(value)
