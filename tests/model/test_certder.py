"""The device certificate reader: the same answers as ``cryptography`` on what devices make,
and a refusal for every other layout, including ones ``cryptography`` would take."""

from __future__ import annotations

import datetime
import os
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given

from tests.fuzz.mutate import FUZZ, mutated
from wifisync.errors import IntegrityError, WifisyncError
from wifisync.model import certder
from wifisync.model.deviceid import device_id_for, format_device_id
from wifisync.model.identity import (
    DeviceIdentity,
    make_certificate,
    public_key_of_certificate,
)
from wifisync.model.membercert import checked_member_certificate

IDENTITIES = [DeviceIdentity.generate() for _ in range(8)]
KEY = Ed25519PrivateKey.generate()
RAW_KEY = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
CN = format_device_id(device_id_for(RAW_KEY))


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    length = bytes([n]) if n < 0x80 else (bytes([0x81, n]) if n < 0x100
                                          else bytes([0x82]) + n.to_bytes(2, "big"))
    return bytes([tag]) + length + content


def _name(cn: str = CN, string_tag: int = 0x0C) -> bytes:
    attribute = _tlv(0x30, bytes.fromhex("0603550403") + _tlv(string_tag, cn.encode()))
    return _tlv(0x30, _tlv(0x31, attribute))


def _ext(oid: bytes, value: bytes, critical: bool = False) -> bytes:
    return _tlv(0x30, oid + (bytes.fromhex("0101ff") if critical else b"") + _tlv(0x04, value))


BC = bytes.fromhex("0603551d13")
SAN = bytes.fromhex("0603551d11")
DEFAULTS: dict[str, bytes] = {
    "version": bytes.fromhex("a003020102"),
    "serial": _tlv(0x02, bytes.fromhex("4a0b") + bytes(18)),
    "algorithm": certder.ED25519_ALGORITHM,
    "issuer": _name(),
    "validity": _tlv(0x30, _tlv(0x17, b"261127215140Z") + _tlv(0x18, b"21261104215140Z")),
    "subject": _name(),
    "key": _tlv(0x30, certder.ED25519_ALGORITHM + _tlv(0x03, b"\x00" + RAW_KEY)),
    "extensions": _tlv(0xA3, _tlv(0x30, _ext(BC, certder.NOT_CA, critical=True)
                                  + _ext(SAN, certder.OUR_ALT_NAME))),
}


def _made(**changes: bytes) -> bytes:
    """A device certificate built field by field with ``changes``, signed by ``KEY``."""
    fields = {**DEFAULTS, **changes}
    tbs = _tlv(0x30, b"".join(fields[k] for k in DEFAULTS))
    signature = _tlv(0x03, b"\x00" + KEY.sign(tbs))
    return _tlv(0x30, tbs + certder.ED25519_ALGORITHM + signature)


def test_what_devices_make_reads_as_cryptography_reads_it() -> None:
    for identity in IDENTITIES:
        cert = x509.load_der_x509_certificate(identity.cert_der)
        parsed = certder.parse(identity.cert_der)
        assert parsed.public_key == identity.public_key == cert.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw)
        assert parsed.tbs == cert.tbs_certificate_bytes
        assert parsed.signature == cert.signature
        assert parsed.common_name == cert.subject.rfc4514_string().removeprefix("CN=")
        assert parsed.subject == parsed.issuer
        assert parsed.basic_constraints == certder.NOT_CA
        assert identity.cert_pem == cert.public_bytes(Encoding.PEM)
        assert certder.pem_to_der(identity.cert_pem) == identity.cert_der
        assert checked_member_certificate(identity.cert_der) == identity.device_id


def _theirs(seed: bytes, common_name: str | None, not_before: datetime.datetime,
            not_after: datetime.datetime, serial: int) -> bytes:
    """The certificate ``cryptography``'s builder makes for the same key, names and dates."""
    from cryptography.x509.oid import NameOID

    key = Ed25519PrivateKey.from_private_bytes(seed)
    name = x509.Name([] if common_name is None else [
        x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if common_name is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("wifisync.invalid")]), critical=False)
    return builder.sign(key, None).public_bytes(Encoding.DER)


UTC = datetime.UTC


@pytest.mark.parametrize(("not_before", "not_after", "serial"), [
    (datetime.datetime(2026, 11, 28, 7, 1, 2, tzinfo=UTC),
     datetime.datetime(2126, 11, 4, 7, 1, 2, tzinfo=UTC), (1 << 158) + 12345),
    (datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),
     datetime.datetime(2050, 1, 1, tzinfo=UTC), 1),
    (datetime.datetime(1999, 2, 28, tzinfo=UTC),
     datetime.datetime(2000, 2, 29, 12, tzinfo=UTC), 0x80),
])
@pytest.mark.parametrize("common_name", [CN, None])
def test_the_writer_makes_byte_for_byte_what_cryptography_builds(
        not_before: datetime.datetime, not_after: datetime.datetime, serial: int,
        common_name: str | None) -> None:
    seed = bytes(range(32))
    ours = certder.certificate(seed, common_name, not_before, not_after, serial)
    assert ours == _theirs(seed, common_name, not_before, not_after, serial)
    if common_name is not None:
        assert certder.parse(ours).common_name == common_name


def test_new_identities_and_throwaway_certificates_load_into_tls(tmp_path: Path) -> None:
    for name in (IDENTITIES[0].short_id, None):
        seed = os.urandom(32)
        der = make_certificate(seed, name, 2)
        cert = x509.load_der_x509_certificate(der)
        cert.verify_directly_issued_by(cert)
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert lifetime == datetime.timedelta(days=3)
        assert 0 < cert.serial_number < 1 << 159
        (tmp_path / "c.pem").write_bytes(certder.der_to_pem(der))
        (tmp_path / "k.pem").write_bytes(certder.der_to_pem(certder.pkcs8_ed25519(seed),
                                                            b"PRIVATE KEY"))
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(tmp_path / "c.pem",
                                                                tmp_path / "k.pem")
        other = certder.der_to_pem(certder.pkcs8_ed25519(os.urandom(32)), b"PRIVATE KEY")
        (tmp_path / "k.pem").write_bytes(other)
        with pytest.raises(ssl.SSLError):  # OpenSSL holds the key to the certificate
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(tmp_path / "c.pem",
                                                                    tmp_path / "k.pem")


def test_an_identity_signs_as_cryptography_signs_with_its_key() -> None:
    identity = IDENTITIES[1]
    theirs = Ed25519PrivateKey.from_private_bytes(identity.seed)
    assert identity.sign(b"message") == theirs.sign(b"message")
    assert identity.public_key == theirs.public_key().public_bytes(Encoding.Raw,
                                                                   PublicFormat.Raw)
    assert repr(identity.seed) not in repr(identity)


def test_the_certificates_built_here_are_what_devices_make() -> None:
    der = _made()
    cert = x509.load_der_x509_certificate(der)
    cert.verify_directly_issued_by(cert)
    assert checked_member_certificate(der) == device_id_for(RAW_KEY)


@pytest.mark.parametrize(("case", "cert"), [
    ("bytes after it", _made() + b"\x00"),
    ("long length form for a short length",
     b"\x30\x82\x00\x05" + _made()[4:9]),
    ("indefinite length", b"\x30\x80" + _made()[4:] + b"\x00\x00"),
    ("X.509 v1 (no version field)", _made(version=b"")),
    ("X.509 v2", _made(version=bytes.fromhex("a003020101"))),
    ("serial zero", _made(serial=_tlv(0x02, b"\x00"))),
    ("negative serial", _made(serial=_tlv(0x02, b"\xff"))),
    ("serial of 21 bytes", _made(serial=_tlv(0x02, b"\x01" * 21))),
    ("serial padded", _made(serial=_tlv(0x02, b"\x00\x01"))),
    ("signed with another algorithm", _made(algorithm=_tlv(0x30, bytes.fromhex(
        "06082a8648ce3d040302")))),
    ("Ed25519 with parameters", _made(algorithm=_tlv(0x30, bytes.fromhex("06032b65700500")))),
    ("a GeneralizedTime before 2050", _made(validity=_tlv(0x30, _tlv(
        0x18, b"20261127215140Z") + _tlv(0x18, b"21261104215140Z")))),
    ("a time that is no date", _made(validity=_tlv(0x30, _tlv(
        0x17, b"260230215140Z") + _tlv(0x18, b"21261104215140Z")))),
    ("a time with a zone", _made(validity=_tlv(0x30, _tlv(
        0x17, b"2611272151+00") + _tlv(0x18, b"21261104215140Z")))),
    ("a PrintableString name", _made(subject=_name(string_tag=0x13),
                                     issuer=_name(string_tag=0x13))),
    ("two names", _made(subject=_tlv(0x30, _name()[2:] * 2),
                        issuer=_tlv(0x30, _name()[2:] * 2))),
    ("an empty name", _made(subject=_tlv(0x30, b""), issuer=_tlv(0x30, b""))),
    ("another extension", _made(extensions=_tlv(0xA3, _tlv(0x30, _ext(
        BC, certder.NOT_CA, critical=True) + _ext(bytes.fromhex("0603551d0f"), b"\x03\x02\x07\x80",
                                                  critical=True))))),
    ("another alternative name", _made(extensions=_tlv(0xA3, _tlv(0x30, _ext(
        BC, certder.NOT_CA, critical=True) + _ext(SAN, bytes.fromhex("30098207") + b"example"))))),
    ("a critical alternative name", _made(extensions=_tlv(0xA3, _tlv(0x30, _ext(
        BC, certder.NOT_CA, critical=True) + _ext(SAN, certder.OUR_ALT_NAME, critical=True))))),
    ("the basic constraints twice", _made(extensions=_tlv(0xA3, _tlv(0x30, _ext(
        BC, certder.NOT_CA, critical=True) * 2)))),
    ("an explicit critical FALSE", _made(extensions=_tlv(0xA3, _tlv(0x30, _tlv(
        0x30, BC + bytes.fromhex("010100") + _tlv(0x04, certder.NOT_CA)))))),
    ("an explicit cA FALSE", _made(extensions=_tlv(0xA3, _tlv(0x30, _ext(
        BC, bytes.fromhex("3003010100"), critical=True))))),
    ("no extensions in the list", _made(extensions=_tlv(0xA3, _tlv(0x30, b"")))),
    ("a signature with unused bits", _made()[:-65] + b"\x01" + _made()[-64:]),
])
def test_any_other_layout_is_refused(case: str, cert: bytes) -> None:
    with pytest.raises(IntegrityError, match="malformed member certificate"):
        checked_member_certificate(cert)
    with pytest.raises(IntegrityError, match="malformed certificate"):
        public_key_of_certificate(cert)


def test_a_duplicated_extension_is_an_integrity_error() -> None:
    """``cryptography`` raised DuplicateExtension here, outside the error tree."""
    with pytest.raises(IntegrityError):
        checked_member_certificate(_made(extensions=_tlv(0xA3, _tlv(0x30, _ext(
            BC, certder.NOT_CA, critical=True) * 2))))


def test_a_ca_certificate_with_a_path_length_is_named_a_ca() -> None:
    ca = _made(extensions=_tlv(0xA3, _tlv(0x30, _ext(BC, bytes.fromhex("30060101ff020100"),
                                                      critical=True))))
    with pytest.raises(IntegrityError, match="is a CA certificate"):
        checked_member_certificate(ca)


def test_an_issuer_other_than_the_subject_is_not_self_signed() -> None:
    other = _made(issuer=_name(format_device_id(IDENTITIES[0].device_id)))
    with pytest.raises(IntegrityError, match="not signed by its own device key"):
        checked_member_certificate(other)


def test_pem_is_one_certificate_block_of_base64() -> None:
    pem = IDENTITIES[0].cert_pem
    assert certder.pem_to_der(b"\n" + pem.replace(b"\n", b"\r\n")) == IDENTITIES[0].cert_der
    for bad in (pem.replace(b"CERTIFICATE", b"PRIVATE KEY"), pem[:-30], pem.replace(b"M", b"*"),
                pem + pem):
        with pytest.raises(IntegrityError):
            certder.pem_to_der(bad)


def _cryptography_checks(der: bytes) -> bytes:
    """What checked_member_certificate checked with ``cryptography`` before this reader."""
    cert = x509.load_der_x509_certificate(der)
    key = cert.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(cert)
    device = device_id_for(key)
    names = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    assert all(a.value == format_device_id(device) for a in names)
    return device


@FUZZ
@given(mutated([i.cert_der for i in IDENTITIES] + [_made()]))
def test_what_the_reader_accepts_cryptography_accepts_alike(der: bytes) -> None:
    try:
        parsed = certder.parse(der)
    except IntegrityError:
        return
    if parsed.public_key:
        cert = x509.load_der_x509_certificate(der)
        assert parsed.public_key == cert.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        assert parsed.tbs == cert.tbs_certificate_bytes
    try:
        device = checked_member_certificate(der)
    except IntegrityError:
        return
    assert _cryptography_checks(der) == device


def test_dates_devices_wrote_stay_readable() -> None:
    """UTCTime up to 2049, GeneralizedTime from 2050 (how cryptography chooses)."""
    for tag, text in ((0x17, b"491231235959Z"), (0x18, b"20500101000000Z"),
                      (0x18, b"21240229120000Z")):
        der = _made(validity=_tlv(0x30, _tlv(tag, text) + _tlv(0x18, b"21261104215140Z")))
        assert certder.parse(der).public_key == RAW_KEY
        x509.load_der_x509_certificate(der)


def test_a_device_key_file_reads_as_cryptography_reads_it(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    for identity in IDENTITIES:
        der = certder.pem_to_der(identity.key_pem, b"PRIVATE KEY")
        theirs = Ed25519PrivateKey.from_private_bytes(identity.seed)
        assert der == theirs.private_bytes(
            Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        assert certder.ed25519_seed(der) == identity.seed
        identity.save(tmp_path)
        assert DeviceIdentity.load(tmp_path).seed == identity.seed
    for bad in (der[:-1], der + b"\x00", der.replace(b"\x2b\x65\x70", b"\x2b\x65\x71")):
        with pytest.raises(IntegrityError):
            certder.ed25519_seed(bad)


def test_a_key_file_in_another_form_still_loads_or_is_named(tmp_path: Path) -> None:
    """What the direct reader does not take goes to ``cryptography``, as before it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    identity = IDENTITIES[0]
    identity.save(tmp_path)
    key_file = tmp_path / "device.key"
    key_file.write_bytes(b"a comment\n" + identity.key_pem.replace(b"\n", b"\r\n"))
    assert DeviceIdentity.load(tmp_path).public_key == identity.public_key
    key_file.write_bytes(identity.key_pem[:40] + b"*" + identity.key_pem[41:])
    with pytest.raises(WifisyncError, match="corrupt"):
        DeviceIdentity.load(tmp_path)
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    key_file.write_bytes(other)
    with pytest.raises(WifisyncError, match="not an Ed25519 key"):
        DeviceIdentity.load(tmp_path)
    theirs = Ed25519PrivateKey.from_private_bytes(identity.seed)
    key_file.write_bytes(theirs.private_bytes(
        Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()))
    with pytest.raises(WifisyncError, match="corrupt"):
        DeviceIdentity.load(tmp_path)
    key_file.write_bytes(theirs.private_bytes(
        Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(WifisyncError, match="corrupt"):
        DeviceIdentity.load(tmp_path)
