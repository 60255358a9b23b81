"""A device's identity: one Ed25519 key that signs records and its self-signed TLS certificate."""

from __future__ import annotations

import datetime
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import nacl.bindings
import nacl.exceptions

from wifisync.errors import IntegrityError, NotInitialisedError, WifisyncError
from wifisync.model import certder
from wifisync.model.deviceid import device_id_for, format_device_id, short_device_id

KEY_FILE = "device.key"
CERT_FILE = "device.crt"
SEED_BYTES = 32  # an Ed25519 private key (RFC 8032): libsodium's seed, PKCS#8's octets
CERT_YEARS = 100
SERIAL_BYTES = 20  # a positive serial of at most 20 bytes (RFC 5280), 159 random bits as
# ``cryptography`` makes them


def verify_signature(public_key: bytes, signature: bytes, message: bytes) -> None:
    """Check an Ed25519 signature; raise :class:`IntegrityError` when it does not hold."""
    # libsodium verifies about twice as fast as OpenSSL here (25k/s against 12k/s).
    if len(signature) != nacl.bindings.crypto_sign_BYTES:
        raise IntegrityError("bad signature")
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError) as exc:
        raise IntegrityError("bad signature") from exc


def make_certificate(seed: bytes, common_name: str | None, days: int = CERT_YEARS * 365
                     ) -> bytes:
    """A self-signed ``CA:FALSE`` certificate of the key ``seed`` for TLS, in DER, valid from
    a day ago for ``days`` (a device's for 100 years); None as the name: a throwaway one."""
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    serial = int.from_bytes(os.urandom(SERIAL_BYTES), "big") >> 1 or 1
    return certder.certificate(seed, common_name, now - datetime.timedelta(days=1),
                               now + datetime.timedelta(days=days), serial)


@functools.lru_cache(maxsize=4096)
def public_key_of_certificate(cert_der: bytes) -> bytes:
    """The raw Ed25519 public key inside a DER device certificate (remembered: membership
    reads the same few certificates once per MEMBER record)."""
    try:
        key = certder.parse(cert_der).public_key
    except IntegrityError as exc:
        raise IntegrityError(f"malformed certificate ({exc})") from None
    if not key:
        raise IntegrityError("certificate key is not Ed25519")
    return key


def device_id_of_certificate(cert_der: bytes) -> bytes:
    """The device ID a certificate speaks for."""
    return device_id_for(public_key_of_certificate(cert_der))


def _private_key(pem: bytes, path: Path) -> bytes:
    """The seed in a device key file: read directly in the form devices write it, else (any
    other PKCS#8 or PEM form) by ``cryptography``."""
    try:
        return certder.ed25519_seed(certder.pem_to_der(pem, b"PRIVATE KEY"))
    except IntegrityError:
        pass
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:  # TypeError: the key is encrypted
        raise WifisyncError(f"{path}: device key or certificate is corrupt") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise WifisyncError(f"{path}: not an Ed25519 key")
    return key.private_bytes_raw()


@dataclass(frozen=True)
class DeviceIdentity:
    """This device's key pair and certificate."""

    seed: bytes = field(repr=False)  # the Ed25519 private key (never in a repr or a log)
    cert_der: bytes  # the certificate in DER form (what membership records carry)

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_BYTES:
            raise ValueError("an Ed25519 private key is 32 bytes")

    @functools.cached_property
    def _keypair(self) -> tuple[bytes, bytes]:
        """libsodium's (public key, secret key) of the seed."""
        public, secret = nacl.bindings.crypto_sign_seed_keypair(self.seed)
        return public, secret

    @property
    def public_key(self) -> bytes:
        """Raw 32-byte public key."""
        return self._keypair[0]

    @property
    def device_id(self) -> bytes:
        """Raw 32-byte device ID."""
        return device_id_for(self.public_key)

    @property
    def device_id_text(self) -> str:
        """The formatted device ID."""
        return format_device_id(self.device_id)

    @property
    def short_id(self) -> str:
        """First group of the formatted device ID."""
        return short_device_id(self.device_id)

    @property
    def cert_pem(self) -> bytes:
        """Certificate in PEM form (what TLS contexts load)."""
        return certder.der_to_pem(self.cert_der)

    @property
    def key_pem(self) -> bytes:
        """Private key in unencrypted PKCS#8 PEM (only ever written to a 0600 file)."""
        return certder.der_to_pem(certder.pkcs8_ed25519(self.seed), b"PRIVATE KEY")

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature by this device."""
        signed = nacl.bindings.crypto_sign(message, self._keypair[1])
        return signed[:nacl.bindings.crypto_sign_BYTES]

    @classmethod
    def generate(cls) -> DeviceIdentity:
        """Make a new key pair and certificate."""
        seed = os.urandom(SEED_BYTES)
        public, _secret = nacl.bindings.crypto_sign_seed_keypair(seed)
        return cls(seed=seed, cert_der=make_certificate(seed, format_device_id(
            device_id_for(public))))

    def save(self, directory: Path) -> None:
        """Write key (mode 0600, created atomically) and certificate into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_path = directory / KEY_FILE
        tmp = key_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.key_pem)
        os.replace(tmp, key_path)
        (directory / CERT_FILE).write_bytes(self.cert_pem)

    @classmethod
    def exists(cls, directory: Path) -> bool:
        """Whether an identity was saved in ``directory``."""
        return (directory / KEY_FILE).exists()

    @classmethod
    def load(cls, directory: Path) -> DeviceIdentity:
        """Read a saved identity; a missing one means the home is not initialised."""
        key_path = directory / KEY_FILE
        try:
            key_pem = key_path.read_bytes()
            cert_pem = (directory / CERT_FILE).read_bytes()
        except FileNotFoundError as exc:
            raise NotInitialisedError(
                "this device is not set up; run `wifisync init` to create a vault, or "
                "`wifisync join CODE` to join one"
            ) from exc
        try:
            cert = certder.pem_to_der(cert_pem)
            cert_key = public_key_of_certificate(cert)
        except IntegrityError as exc:
            raise WifisyncError(f"{key_path}: device key or certificate is corrupt") from exc
        identity = cls(seed=_private_key(key_pem, key_path), cert_der=cert)
        if cert_key != identity.public_key:
            raise WifisyncError(f"{directory / CERT_FILE}: certificate does not match the key")
        return identity
