"""A device's identity: one Ed25519 key that signs records and its self-signed TLS certificate."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import nacl.bindings
import nacl.exceptions
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from wifisync.errors import IntegrityError, NotInitialisedError, WifisyncError
from wifisync.model import certder
from wifisync.model.deviceid import device_id_for, format_device_id, short_device_id

if TYPE_CHECKING:
    from cryptography import x509

KEY_FILE = "device.key"
CERT_FILE = "device.crt"


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes_raw()


def verify_signature(public_key: bytes, signature: bytes, message: bytes) -> None:
    """Check an Ed25519 signature; raise :class:`IntegrityError` when it does not hold."""
    # libsodium verifies about twice as fast as OpenSSL here (25k/s against 12k/s).
    if len(signature) != nacl.bindings.crypto_sign_BYTES:
        raise IntegrityError("bad signature")
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError) as exc:
        raise IntegrityError("bad signature") from exc


def make_certificate(key: Ed25519PrivateKey, common_name: str) -> x509.Certificate:
    """A self-signed ``CA:FALSE`` certificate for TLS, valid for 100 years (the layout
    :mod:`wifisync.model.certder` reads: change both together)."""
    import datetime

    from cryptography import x509  # only devices being made need it
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=36500))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("wifisync.invalid")]), critical=False
        )
        .sign(key, None)
    )


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


def _private_key(pem: bytes, path: Path) -> Ed25519PrivateKey:
    """A device key file: read directly in the form devices write it, else (any other
    PKCS#8 or PEM form) by ``cryptography``."""
    try:
        return Ed25519PrivateKey.from_private_bytes(
            certder.ed25519_seed(certder.pem_to_der(pem, b"PRIVATE KEY")))
    except IntegrityError:
        pass
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:  # TypeError: the key is encrypted
        raise WifisyncError(f"{path}: device key or certificate is corrupt") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise WifisyncError(f"{path}: not an Ed25519 key")
    return key


@dataclass(frozen=True)
class DeviceIdentity:
    """This device's key pair and certificate."""

    private_key: Ed25519PrivateKey
    cert_der: bytes  # the certificate in DER form (what membership records carry)

    @property
    def public_key(self) -> bytes:
        """Raw 32-byte public key."""
        return _raw_public(self.private_key.public_key())

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
        from cryptography.hazmat.primitives import serialization  # writers only

        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature by this device."""
        return self.private_key.sign(message)

    @classmethod
    def generate(cls) -> DeviceIdentity:
        """Make a new key pair and certificate."""
        key = Ed25519PrivateKey.generate()
        cn = format_device_id(device_id_for(_raw_public(key.public_key())))
        from cryptography.hazmat.primitives import serialization  # writers only

        cert = make_certificate(key, cn).public_bytes(serialization.Encoding.DER)
        return cls(private_key=key, cert_der=cert)

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
        identity = cls(private_key=_private_key(key_pem, key_path), cert_der=cert)
        if cert_key != identity.public_key:
            raise WifisyncError(f"{directory / CERT_FILE}: certificate does not match the key")
        return identity
