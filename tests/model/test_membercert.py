"""Certificates in MEMBER records: only a self-signed CA:FALSE Ed25519 one naming its own key."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from wifisync.errors import IntegrityError
from wifisync.model.deviceid import device_id_for, format_device_id
from wifisync.model.identity import DeviceIdentity, device_id_of_certificate
from wifisync.model.membercert import checked_member_certificate
from wifisync.model.records import Membership

Key = Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def _cert(key: Key, *, cn: str | None = None, ca: bool | None = False,
          signer: Key | None = None) -> bytes:
    """A certificate shaped like a device's, with one thing changed."""
    if cn is None:
        cn = format_device_id(device_id_for(key.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw))) if isinstance(key, Ed25519PrivateKey) else "device"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)))
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                                        critical=True)
    signer = signer or key
    algorithm = None if isinstance(signer, Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(signer, algorithm).public_bytes(Encoding.DER)


def test_a_devices_own_certificate_passes_and_names_its_device() -> None:
    identity = DeviceIdentity.generate()
    assert checked_member_certificate(identity.cert_der) == identity.device_id
    body = Membership(identity.cert_der, "laptop").encode()
    assert Membership.decode(body).device_id == identity.device_id


@pytest.mark.parametrize(("case", "reason"), [
    ("ca", "CA certificate"),
    ("no-constraints", "CA:FALSE"),
    ("ec-key", "not Ed25519"),
    ("other-signer", "not signed by its own device key"),
    ("other-device-named", "names another device"),
    ("garbage", "malformed"),
])
def test_a_member_certificate_that_is_not_a_devices_is_refused_where_records_are_parsed(
        case: str, reason: str) -> None:
    key = Ed25519PrivateKey.generate()
    other = DeviceIdentity.generate()
    cert = {
        "ca": lambda: _cert(key, ca=True),
        "no-constraints": lambda: _cert(key, ca=None),
        "ec-key": lambda: _cert(ec.generate_private_key(ec.SECP256R1())),
        "other-signer": lambda: _cert(key, signer=Ed25519PrivateKey.from_private_bytes(other.seed)),
        "other-device-named": lambda: _cert(key, cn=format_device_id(other.device_id)),
        "garbage": lambda: b"\x30\x03\x02\x01\x00",
    }[case]()
    with pytest.raises(IntegrityError, match=reason):
        checked_member_certificate(cert)
    with pytest.raises(IntegrityError, match=reason):
        Membership.decode(Membership(cert, "mallory").encode())


def test_a_member_record_carrying_a_ca_certificate_is_refused_by_a_replica() -> None:
    """Signed by a current member, for the right item, yet its certificate could mint others."""
    from tests.sync.helpers import household
    from wifisync.model.membership import named_devices
    from wifisync.model.records import Kind, RecordHeader, member_item_id, sign_record

    a, b = household(2)
    key = Ed25519PrivateKey.generate()
    ca = _cert(key, ca=True)
    device = device_id_for(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    seq = a.store.seen().get(a.id, 0) + 1
    header = RecordHeader(b.store.get_meta("vault_id") or b"", member_item_id(device),
                          Kind.MEMBER, a.id, seq, {a.id: seq}, 1, False)
    record = sign_record(a.identity, header, Membership(ca, "mallory").encode())
    before = set(named_devices(b.store))
    result = b.replica.apply([record])
    assert result.refused == 1 and not result.applied
    assert set(named_devices(b.store)) == before


def _long_tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag, 0x82]) + len(content).to_bytes(2, "big") + content


def test_a_member_record_whose_certificate_repeats_an_extension_is_refused_by_a_replica(
        ) -> None:
    """``cryptography`` raised DuplicateExtension (no ValueError) out of the accept path."""
    from tests.sync.helpers import household
    from wifisync.model.membership import named_devices
    from wifisync.model.records import Kind, RecordHeader, member_item_id, sign_record

    a, b = household(2)
    key = Ed25519PrivateKey.generate()
    der = _cert(key)
    constraints = bytes.fromhex("300c0603551d130101ff04023000")  # CA:FALSE, critical
    assert der.count(constraints) == 1
    cert = x509.load_der_x509_certificate(der)
    tbs = cert.tbs_certificate_bytes.replace(constraints, constraints * 2)
    tbs = _long_tlv(0x30, tbs.replace(bytes.fromhex("a310300e"), bytes.fromhex("a31e301c"))[4:])
    doubled = _long_tlv(0x30, tbs + bytes.fromhex("300506032b6570") + b"\x03\x41\x00"
                        + key.sign(tbs))  # re-signed: only the repeated extension is wrong
    device = device_id_for(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    seq = a.store.seen().get(a.id, 0) + 1
    header = RecordHeader(b.store.get_meta("vault_id") or b"", member_item_id(device),
                          Kind.MEMBER, a.id, seq, {a.id: seq}, 1, False)
    record = sign_record(a.identity, header, Membership(doubled, "mallory").encode())
    before = set(named_devices(b.store))
    result = b.replica.apply([record])
    assert result.refused == 1 and not result.applied
    assert set(named_devices(b.store)) == before


def test_a_certificate_of_an_unknown_x509_version_is_refused() -> None:
    der = DeviceIdentity.generate().cert_der
    bad = der.replace(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x03")  # no X.509 v4
    assert bad != der
    with pytest.raises(IntegrityError):
        checked_member_certificate(bad)


def test_a_certificate_naming_an_unknown_key_algorithm_is_an_integrity_error() -> None:
    """``cryptography`` raised UnsupportedAlgorithm here, which is no ValueError (found by
    tests/fuzz); the certificate reader calls any key but Ed25519 what it is."""
    ed25519_oid, unknown_oid = bytes.fromhex("06032b6570"), bytes.fromhex("06032b657f")
    der = DeviceIdentity.generate().cert_der.replace(ed25519_oid, unknown_oid)
    with pytest.raises(IntegrityError, match="member certificate key is not Ed25519"):
        checked_member_certificate(der)
    with pytest.raises(IntegrityError, match="certificate key is not Ed25519"):
        device_id_of_certificate(der)
