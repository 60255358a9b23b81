"""Keys are derived by purpose with pinned answers; ciphers refuse any change."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from wifisync.errors import IntegrityError, WrongPasswordError
from wifisync.model import crypto

SECRET = bytes(range(32))

# Pinned: changing any of these breaks every existing vault and pairing.
KNOWN_DERIVATIONS = {
    "record-payload": "bda8d5984840ebc826f6785a72409d35f1a6afbd0d8569b5273cb836d3decb7c",
    "pairing-confirm-member": "81044fde5033a9e83c6cc9e27ad49643c218745105de27754535cd4a062e27a3",
    "pairing-confirm-joiner": "710fd91e4d47cd0e7e47bcaf2eae318130f9b7b7729843d5ac7df1b0e7ffaac6",
    "pairing-transfer": "09ac3fb6a99085f19c9410d4b55d28317eabd2e47109e6a71e7d08e9a3e2c8a4",
    "mdns-tag": "35bd1006972f49516410e363b015b73e7e10dab12b98ee5e3c06e24557d7ba9c",
    "tls-server-name": "3e90c4a3325f4a334936fafbd12e567bd137fc2d24959f75ef0c38177c9400ce",
    "attachment-id": "94667d3ca25df4bed8ccb9aa35b68e4413f850498110e1dd2eecd2bbd6dfedc9",
    "attachment-chunk": "7251c2a428096da728d3dce0b4de3cbb09bbcb6f884cf4d772291abfd98f1c2c",
}

FAST_KDF = crypto.KdfParams(salt=bytes(16), opslimit=1, memlimit=8192)


def rfc5869_hkdf_sha256(ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 written from RFC 5869 with an empty salt, to check derive_key against."""
    prk = hmac.new(b"\x00" * 32, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def test_reference_hkdf_matches_rfc5869_case_3() -> None:
    # RFC 5869 appendix A.3: SHA-256, zero-length salt and info.
    okm = rfc5869_hkdf_sha256(bytes.fromhex("0b" * 22), b"", 42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
        "9d201395faa4b61a96c8"
    )


@pytest.mark.parametrize(("purpose", "expected"), sorted(KNOWN_DERIVATIONS.items()))
def test_derive_key_known_answers(purpose: str, expected: str) -> None:
    assert crypto.derive_key(SECRET, purpose).hex() == expected


@pytest.mark.parametrize("purpose", sorted(crypto.PURPOSES))
def test_derive_key_is_hkdf_sha256_with_the_purpose_in_info(purpose: str) -> None:
    expected = rfc5869_hkdf_sha256(SECRET, b"wifisync/v1/" + purpose.encode(), 32)
    assert crypto.derive_key(SECRET, purpose) == expected


def test_every_purpose_gives_a_different_key() -> None:
    keys = {crypto.derive_key(SECRET, p) for p in crypto.PURPOSES}
    assert len(keys) == len(crypto.PURPOSES)
    assert SECRET not in keys


def test_known_purposes_are_all_listed() -> None:
    assert set(KNOWN_DERIVATIONS) <= crypto.PURPOSES


@pytest.mark.parametrize("purpose", ["", "record", "Record-Payload", "record-payload "])
def test_unknown_purpose_is_refused(purpose: str) -> None:
    with pytest.raises(ValueError, match="unknown key purpose"):
        crypto.derive_key(SECRET, purpose)


@pytest.mark.parametrize("length", [1, 16, 32, 33, 64, 100, 255 * 32])
def test_derive_key_agrees_with_the_cryptography_package(length: int) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    theirs = HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                  info=b"wifisync/v1/mdns-tag").derive(SECRET)
    assert crypto.derive_key(SECRET, "mdns-tag", length) == theirs


@pytest.mark.parametrize("length", [0, -1, 255 * 32 + 1])
def test_derive_key_refuses_lengths_hkdf_cannot_give(length: int) -> None:
    with pytest.raises(ValueError, match="cannot derive"):
        crypto.derive_key(SECRET, "mdns-tag", length)


def test_derive_key_honours_length() -> None:
    long = crypto.derive_key(SECRET, "mdns-tag", 64)
    assert len(long) == 64
    assert long[:32] == crypto.derive_key(SECRET, "mdns-tag")


def test_argon2id_known_answer_at_the_default_cost() -> None:
    params = crypto.KdfParams(salt=bytes(16))
    assert (params.opslimit, params.memlimit) == (3, 64 * 1024 * 1024)
    assert crypto.password_key("correct horse", params).hex() == (
        "7305faebadc453c91558d7566069a56037063a9c13d29d3f275c56d904a9fb96"
    )


def test_argon2id_known_answer_at_low_cost() -> None:
    assert crypto.password_key("correct horse", FAST_KDF).hex() == (
        "f230a3bde2fda6eacd56fc595a18e5d2750b813583e11a3187fbbf3451527b0d"
    )


def test_fresh_params_use_a_new_salt_each_time() -> None:
    a, b = crypto.KdfParams.fresh(), crypto.KdfParams.fresh()
    assert a.salt != b.salt and len(a.salt) == 16
    assert a.memlimit >= 64 * 1024 * 1024


def test_kdf_params_round_trip_and_refuse_other_algorithms() -> None:
    params = crypto.KdfParams.fresh(1, 8192)
    assert crypto.KdfParams.from_dict(params.to_dict()) == params
    bad = dict(params.to_dict(), alg="scrypt")
    with pytest.raises(IntegrityError):
        crypto.KdfParams.from_dict(bad)
    for key in ("salt", "ops", "mem"):
        broken = dict(params.to_dict(), **{key: "x"})
        with pytest.raises(IntegrityError):
            crypto.KdfParams.from_dict(broken)


def test_wrap_unwrap_round_trip() -> None:
    vault_key = crypto.random_bytes(32)
    wrapped = crypto.wrap_vault_key(vault_key, "pässword", FAST_KDF)
    assert vault_key not in wrapped
    assert crypto.unwrap_vault_key(wrapped, "pässword", FAST_KDF) == vault_key


@pytest.mark.parametrize("guess", ["password", "Pässword", "pässword ", ""])
def test_unwrap_with_wrong_password_raises_wrong_password(guess: str) -> None:
    wrapped = crypto.wrap_vault_key(crypto.random_bytes(32), "pässword", FAST_KDF)
    with pytest.raises(WrongPasswordError):
        crypto.unwrap_vault_key(wrapped, guess, FAST_KDF)


def test_unwrap_with_other_salt_fails() -> None:
    wrapped = crypto.wrap_vault_key(crypto.random_bytes(32), "pw", FAST_KDF)
    other = crypto.KdfParams(salt=b"\x01" * 16, opslimit=1, memlimit=8192)
    with pytest.raises(WrongPasswordError):
        crypto.unwrap_vault_key(wrapped, "pw", other)


def test_seal_uses_a_fresh_nonce() -> None:
    key = crypto.random_bytes(32)
    a, b = crypto.seal(key, b"same", b"ad"), crypto.seal(key, b"same", b"ad")
    assert a != b
    assert len(a) == crypto.NONCE_SIZE + 4 + 16


def test_aead_detects_any_flipped_bit() -> None:
    key = crypto.random_bytes(32)
    sealed = crypto.seal(key, b"secret payload", b"header")
    assert crypto.open_sealed(key, sealed, b"header") == b"secret payload"
    for pos in range(len(sealed)):
        for bit in (0x01, 0x80):
            tampered = bytearray(sealed)
            tampered[pos] ^= bit
            with pytest.raises(IntegrityError):
                crypto.open_sealed(key, bytes(tampered), b"header")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s, ad, k: (s, ad + b"x", k),
        lambda s, ad, k: (s, ad[:-1], k),
        lambda s, ad, k: (s[:-1], ad, k),
        lambda s, ad, k: (s + b"\x00", ad, k),
        lambda s, ad, k: (s[: crypto.NONCE_SIZE], ad, k),
        lambda s, ad, k: (b"", ad, k),
        lambda s, ad, k: (s, ad, bytes(32)),
        lambda s, ad, k: (s, ad, k[:16]),
    ],
)
def test_aead_refuses_changed_data_key_or_length(mutate: object) -> None:
    key = crypto.random_bytes(32)
    sealed = crypto.seal(key, b"secret payload", b"header")
    s, ad, k = mutate(sealed, b"header", key)  # type: ignore[operator]
    with pytest.raises(IntegrityError):
        crypto.open_sealed(k, s, ad)


@pytest.mark.parametrize(("field", "value"), [
    ("ops", 0), ("ops", crypto.MAX_KDF_OPSLIMIT + 1), ("mem", 1024),
    ("mem", crypto.MAX_KDF_MEMLIMIT + 1), ("salt", bytes(15)),
])
def test_kdf_params_out_of_range_are_refused(field: str, value: object) -> None:
    """A wrapped-key record cannot make unlocking hang, run out of memory or use no salt."""
    good = crypto.KdfParams.fresh(1, 8192).to_dict()
    assert crypto.KdfParams.from_dict(good)
    with pytest.raises(IntegrityError, match="out of range"):
        crypto.KdfParams.from_dict(dict(good, **{field: value}))


def test_kdf_params_below_the_design_floor_are_refused_on_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A member cannot make every device's password cheap to guess by writing 8 KiB Argon2id."""
    monkeypatch.setattr(crypto, "KDF_FLOOR_MEMLIMIT", 64 * 1024 * 1024)
    weak = crypto.KdfParams.fresh(1, 8192).to_dict()
    with pytest.raises(IntegrityError, match="out of range"):
        crypto.KdfParams.from_dict(weak)
    with pytest.raises(IntegrityError, match="out of range"):
        crypto.KdfParams.from_dict(dict(weak, mem=64 * 1024 * 1024 - 1024))
    floor = dict(weak, mem=64 * 1024 * 1024)
    assert crypto.KdfParams.from_dict(floor).memlimit == 64 * 1024 * 1024


def test_raised_params_reach_the_floor_and_keep_a_higher_cost(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "KDF_FLOOR_MEMLIMIT", 64 * 1024 * 1024)
    low = crypto.KdfParams(salt=bytes(16), opslimit=2, memlimit=8192).raised()
    assert (low.opslimit, low.memlimit) == (2, 64 * 1024 * 1024) and low.salt != bytes(16)
    high = crypto.KdfParams(salt=bytes(16), opslimit=4, memlimit=256 * 1024 * 1024).raised()
    assert (high.opslimit, high.memlimit) == (4, 256 * 1024 * 1024)
