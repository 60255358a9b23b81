"""A device identity is one Ed25519 key, kept private on disk, and a CA:FALSE certificate."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from wifisync.errors import IntegrityError, NotInitialisedError, WifisyncError
from wifisync.model.deviceid import device_id_for, parse_device_id
from wifisync.model.identity import (
    CERT_FILE,
    KEY_FILE,
    DeviceIdentity,
    device_id_of_certificate,
    public_key_of_certificate,
    verify_signature,
)


@pytest.fixture(scope="module")
def identity() -> DeviceIdentity:
    return DeviceIdentity.generate()


def test_device_id_is_hash_of_public_key(identity: DeviceIdentity) -> None:
    assert len(identity.public_key) == 32
    assert identity.device_id == device_id_for(identity.public_key)
    assert parse_device_id(identity.device_id_text) == identity.device_id
    assert identity.device_id_text.startswith(identity.short_id)


def test_certificate_is_self_signed_not_a_ca_and_carries_the_same_key(
    identity: DeviceIdentity,
) -> None:
    cert = x509.load_der_x509_certificate(identity.cert_der)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    assert public_key_of_certificate(identity.cert_der) == identity.public_key
    assert device_id_of_certificate(identity.cert_der) == identity.device_id
    assert cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(
        days=365 * 50)
    assert identity.cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")


def test_sign_and_verify(identity: DeviceIdentity) -> None:
    sig = identity.sign(b"message")
    verify_signature(identity.public_key, sig, b"message")
    with pytest.raises(IntegrityError):
        verify_signature(identity.public_key, sig, b"messagE")
    with pytest.raises(IntegrityError):
        verify_signature(DeviceIdentity.generate().public_key, sig, b"message")
    with pytest.raises(IntegrityError):
        verify_signature(identity.public_key, sig[:-1], b"message")
    with pytest.raises(IntegrityError):
        verify_signature(b"short", sig, b"message")


def test_save_and_load_round_trip_with_a_private_key_file(
    identity: DeviceIdentity, tmp_path: Path
) -> None:
    d = tmp_path / "data"
    assert not DeviceIdentity.exists(d)
    identity.save(d)
    assert DeviceIdentity.exists(d)
    assert stat.S_IMODE((d / KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert not list(d.glob("*.tmp"))
    loaded = DeviceIdentity.load(d)
    assert loaded.device_id == identity.device_id
    assert loaded.cert_der == identity.cert_der
    verify_signature(identity.public_key, loaded.sign(b"m"), b"m")


def test_load_from_an_empty_folder_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(NotInitialisedError, match="wifisync init"):
        DeviceIdentity.load(tmp_path)


def test_load_of_a_corrupt_key_is_a_clear_error(identity: DeviceIdentity, tmp_path: Path) -> None:
    identity.save(tmp_path)
    (tmp_path / KEY_FILE).write_bytes(b"garbage")
    with pytest.raises(WifisyncError, match="corrupt"):
        DeviceIdentity.load(tmp_path)


def test_load_refuses_a_certificate_of_another_key(
    identity: DeviceIdentity, tmp_path: Path
) -> None:
    identity.save(tmp_path)
    (tmp_path / CERT_FILE).write_bytes(DeviceIdentity.generate().cert_pem)
    with pytest.raises(WifisyncError, match="does not match"):
        DeviceIdentity.load(tmp_path)


def test_a_non_ed25519_certificate_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(IntegrityError, match="Ed25519"):
        public_key_of_certificate(cert.public_bytes(Encoding.DER))
    with pytest.raises(IntegrityError, match="malformed"):
        public_key_of_certificate(b"not a certificate")


def test_a_certificate_of_an_unknown_x509_version_is_malformed(identity: DeviceIdentity) -> None:
    v3 = b"\xa0\x03\x02\x01\x02"  # [0] EXPLICIT INTEGER 2: X.509 version 3
    assert identity.cert_der.count(v3) == 1
    bad = identity.cert_der.replace(v3, b"\xa0\x03\x02\x01\x03")  # no such version
    with pytest.raises(IntegrityError, match="malformed"):
        device_id_of_certificate(bad)
