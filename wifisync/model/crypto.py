"""Every key and cipher in one place: keys are derived by purpose, never reused across purposes."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.pwhash
import nacl.utils

from wifisync.errors import IntegrityError, WrongPasswordError

KEY_SIZE = 32
MAX_KDF_OPSLIMIT = 16  # libsodium's "sensitive" preset is 4
MAX_KDF_MEMLIMIT = 4 * 1024 * 1024 * 1024  # 4 GiB; "sensitive" is 1 GiB
# The design floor: a member writing cheaper parameters would make every device's
# password cheaper to guess, so less memory than this is refused on read.
KDF_FLOOR_MEMLIMIT = 64 * 1024 * 1024
NONCE_SIZE = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES

#: Every purpose a key is derived for; a purpose not listed here is a bug.
PURPOSES = frozenset(
    {
        "record-payload",  # XChaCha20-Poly1305 key for item payloads
        "pairing-confirm-member",  # SPAKE2 key confirmation, member side
        "pairing-confirm-joiner",  # SPAKE2 key confirmation, joining side
        "pairing-transfer",  # encrypts the vault secrets handed over at pairing
        "mdns-tag",  # TXT tag that lets members, and only members, recognise each other
        "tls-server-name",  # TLS SNI that makes a daemon show its identity (members only)
        "backup-identity",  # encrypts the device key inside an encrypted backup file
        "signature-mark",  # keys the marks of records whose signature this device checked
        "title-tag",  # keys the tags that find an item version by title without decrypting it
        "attachment-id",  # keys the hash that names an attachment by its content
        "attachment-chunk",  # XChaCha20-Poly1305 key for attachment chunks
    }
)


def derive_key(secret: bytes, purpose: str, length: int = KEY_SIZE) -> bytes:
    """Derive a sub-key of ``secret`` for exactly one named purpose (HKDF-SHA256).

    RFC 5869 with no salt (a hash length of zero bytes), written on the standard library's
    HMAC: the daemon and the everyday commands need no ``cryptography`` (about 8 MiB
    resident and 35 ms of every start); tests hold it to ``cryptography``'s HKDF.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}")
    size = hashlib.sha256().digest_size
    if not 0 < length <= 255 * size:
        raise ValueError(f"cannot derive {length} bytes")
    info = b"wifisync/v1/" + purpose.encode()
    prk = hmac.digest(bytes(size), secret, "sha256")
    blocks = [b""]
    for counter in range(1, -(-length // size) + 1):
        blocks.append(hmac.digest(prk, blocks[-1] + info + bytes([counter]), "sha256"))
    return b"".join(blocks)[:length]


def random_bytes(n: int) -> bytes:
    """Return ``n`` bytes from the OS random source."""
    return nacl.utils.random(n)


def sha256(data: bytes) -> bytes:
    """SHA-256 digest."""
    return hashlib.sha256(data).digest()


def seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """Encrypt with XChaCha20-Poly1305; returns nonce + ciphertext."""
    nonce = random_bytes(NONCE_SIZE)
    return nonce + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plaintext, associated, nonce, key
    )


def open_sealed(key: bytes, sealed: bytes, associated: bytes) -> bytes:
    """Decrypt what :func:`seal` made; any change to it or its associated data fails."""
    nonce, ciphertext = sealed[:NONCE_SIZE], sealed[NONCE_SIZE:]
    try:
        return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ciphertext, associated, nonce, key
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise IntegrityError("ciphertext failed authentication") from exc


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id parameters, stored beside the wrapped key so they can be raised later."""

    salt: bytes
    opslimit: int = 3
    memlimit: int = 64 * 1024 * 1024

    def to_dict(self) -> dict[str, object]:
        """Plain form for the vault-key record."""
        return {"alg": "argon2id13", "salt": self.salt, "ops": self.opslimit, "mem": self.memlimit}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> KdfParams:
        """Parse the plain form, refusing anything but Argon2id."""
        if d.get("alg") != "argon2id13":
            raise IntegrityError("unknown key-derivation algorithm")
        salt, ops, mem = d.get("salt"), d.get("ops"), d.get("mem")
        if not isinstance(salt, bytes) or not isinstance(ops, int) or not isinstance(mem, int):
            raise IntegrityError("malformed key-derivation parameters")
        # Whoever wrote this record cannot make unlocking hang or run out of memory,
        # nor make the password cheaper to guess than the design floor.
        if len(salt) != nacl.pwhash.argon2id.SALTBYTES or not (
                nacl.pwhash.argon2id.OPSLIMIT_MIN <= ops <= MAX_KDF_OPSLIMIT
                and max(KDF_FLOOR_MEMLIMIT, nacl.pwhash.argon2id.MEMLIMIT_MIN) <= mem
                <= MAX_KDF_MEMLIMIT):
            raise IntegrityError("key-derivation parameters out of range")
        return cls(salt=salt, opslimit=ops, memlimit=mem)

    def raised(self) -> KdfParams:
        """New parameters (a new salt) at least as costly as these and the floor."""
        return KdfParams.fresh(self.opslimit, max(self.memlimit, KDF_FLOOR_MEMLIMIT))

    @classmethod
    def fresh(cls, opslimit: int = 3, memlimit: int = 64 * 1024 * 1024) -> KdfParams:
        """New parameters with a random salt."""
        return cls(salt=random_bytes(nacl.pwhash.argon2id.SALTBYTES), opslimit=opslimit,
                   memlimit=memlimit)


def password_key(password: str, params: KdfParams) -> bytes:
    """Stretch the master password into a key-encryption key with Argon2id."""
    return nacl.pwhash.argon2id.kdf(
        KEY_SIZE, password.encode("utf-8"), params.salt,
        opslimit=params.opslimit, memlimit=params.memlimit,
    )


WRAP_AAD = b"wifisync/v1/vault-key-wrap"


def wrap_vault_key(vault_key: bytes, password: str, params: KdfParams) -> bytes:
    """Encrypt the vault key under the master password."""
    return seal(password_key(password, params), vault_key, WRAP_AAD)


def unwrap_vault_key(wrapped: bytes, password: str, params: KdfParams) -> bytes:
    """Recover the vault key; a wrong password raises :class:`WrongPasswordError`."""
    try:
        return open_sealed(password_key(password, params), wrapped, WRAP_AAD)
    except IntegrityError as exc:
        raise WrongPasswordError("wrong master password") from exc
