"""Device certificates and key files in the one DER layout wifisync writes, read strictly.

Every device's certificate comes from :func:`certificate` (through
:func:`wifisync.model.identity.make_certificate`): X.509 v3, a serial, Ed25519 for key and
signature, a name of one common name for both subject and issuer, a validity, and at most
the basic constraints and the fixed subject alternative name as extensions; the same
writer, with an empty name, makes the daemon's throwaway TLS certificates. The reader takes
that layout in strict DER (shortest lengths, nothing left over, no other field, algorithm or
extension) and refuses anything else, so it accepts no certificate that ``cryptography``
would refuse. Neither the CLI nor the daemon imports ``cryptography`` for certificates
(about 8 MiB resident and 35 ms of every start); tests hold both directions to it.
What the fields say (CA or not, who signed, which device) is judged by the callers.
A device's key file is the one PKCS#8 form ``cryptography`` writes for an Ed25519 key.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from dataclasses import dataclass

import nacl.bindings

from wifisync.errors import IntegrityError

ED25519_ALGORITHM = bytes.fromhex("300506032b6570")  # AlgorithmIdentifier, no parameters
_V3 = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2
_CN = bytes.fromhex("0603550403")  # OID 2.5.4.3, commonName
_BASIC_CONSTRAINTS = bytes.fromhex("0603551d13")  # OID 2.5.29.19
_SUBJECT_ALT_NAME = bytes.fromhex("0603551d11")  # OID 2.5.29.17
NOT_CA = bytes.fromhex("3000")  # BasicConstraints with cA absent (FALSE) and no path length
# dNSName "wifisync.invalid", the one alternative name devices put in their certificates
OUR_ALT_NAME = bytes.fromhex("30128210") + b"wifisync.invalid"
_TRUE = bytes.fromhex("0101ff")
# OneAsymmetricKey v1 (version 0), Ed25519, an OCTET STRING holding the 32-byte seed
_PKCS8_ED25519 = bytes.fromhex("302e020100300506032b657004220420")
MAX_CERT_BYTES = 4096


@dataclass(frozen=True, slots=True)
class DeviceCertificate:
    """The fields of one device certificate that callers judge (all as raw bytes)."""

    tbs: bytes  # the signed part, as it is in the certificate
    public_key: bytes  # 32-byte Ed25519 key, or b"" when the key is of another algorithm
    subject: bytes  # the subject Name, whole
    issuer: bytes  # the issuer Name, whole
    common_name: str  # the subject's one common name
    basic_constraints: bytes | None  # the extension's value (None: absent)
    signature: bytes  # 64-byte Ed25519 signature over ``tbs``, or b"" (another algorithm)


class _Reader:
    """Strict DER over one buffer: one element at a time, shortest lengths only."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def done(self) -> bool:
        return self.pos == len(self.data)

    def element(self, tag: int | None = None) -> tuple[int, bytes, bytes]:
        """The next element: ``(tag, content, whole encoding)``; ``tag`` must match if given."""
        data, start = self.data, self.pos
        if start + 2 > len(data):
            raise IntegrityError("truncated")
        got, first = data[start], data[start + 1]
        if tag is not None and got != tag:
            raise IntegrityError(f"expected tag {tag:#04x}, found {got:#04x}")
        if got & 0x1F == 0x1F:
            raise IntegrityError("multi-byte tag")
        pos = start + 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count not in (1, 2) or pos + count > len(data):
                raise IntegrityError("bad length")
            length = int.from_bytes(data[pos:pos + count], "big")
            pos += count
            if length < 0x80 or (count == 2 and length < 0x100):
                raise IntegrityError("length not in its shortest form")
        end = pos + length
        if end > len(data):
            raise IntegrityError("truncated")
        self.pos = end
        return got, data[pos:end], data[start:end]


def parse(der: bytes) -> DeviceCertificate:
    """The fields of a device certificate; :class:`IntegrityError` for any other bytes."""
    if not isinstance(der, bytes) or len(der) > MAX_CERT_BYTES:
        raise IntegrityError("not a certificate")
    outer = _Reader(der)
    _, cert, _ = outer.element(0x30)
    if not outer.done():
        raise IntegrityError("bytes after the certificate")
    parts = _Reader(cert)
    _, tbs_content, tbs = parts.element(0x30)
    signature_algorithm = parts.element(0x30)[2]
    _, signature_bits, _ = parts.element(0x03)
    if not parts.done():
        raise IntegrityError("extra certificate fields")
    fields = _Reader(tbs_content)
    if fields.element(0xA0)[2] != _V3:
        raise IntegrityError("not an X.509 v3 certificate")
    _integer(fields.element(0x02)[1], positive=True, octets=20)  # the serial (RFC 5280)
    tbs_algorithm = fields.element(0x30)[2]
    _, issuer_content, issuer = fields.element(0x30)
    _common_name(issuer_content)
    _validity(fields.element(0x30)[1])
    _, subject_content, subject = fields.element(0x30)
    _, spki, _ = fields.element(0x30)
    constraints = _extensions(fields.element(0xA3)[1]) if not fields.done() else None
    if not fields.done():
        raise IntegrityError("unexpected certificate fields")
    public_key = _ed25519_key(spki)
    if public_key and (tbs_algorithm != ED25519_ALGORITHM
                       or signature_algorithm != ED25519_ALGORITHM
                       or len(signature_bits) != 65 or signature_bits[0] != 0):
        raise IntegrityError("not signed with Ed25519")
    return DeviceCertificate(tbs, public_key, subject, issuer, _common_name(subject_content),
                             constraints, signature_bits[1:] if public_key else b"")


def _integer(content: bytes, positive: bool, octets: int) -> None:
    """A non-negative INTEGER (``positive``: not zero) of at most ``octets`` content bytes,
    in its shortest form."""
    if not 1 <= len(content) <= octets or content[0] & 0x80 or (positive and not any(content)):
        raise IntegrityError("bad integer")
    if len(content) > 1 and content[0] == 0 and not content[1] & 0x80:
        raise IntegrityError("integer not in its shortest form")


def _validity(content: bytes) -> None:
    """Two times in UTC to the second: UTCTime before 2050, GeneralizedTime from 2050 on
    (RFC 5280)."""
    r = _Reader(content)
    for _ in range(2):
        tag, text, _ = r.element()
        if (tag, len(text)) not in ((0x17, 13), (0x18, 15)) or not (
                text[:-1].isdigit() and text.endswith(b"Z")):
            raise IntegrityError("bad time")
        year = int(text[:-11])
        if tag == 0x17:
            year += 1900 if year >= 50 else 2000
        elif year < 2050:
            raise IntegrityError("a time before 2050 must be a UTCTime")
        month, day, hour, minute, second = (int(text[i:i + 2]) for i in range(-11, -1, 2))
        if not (1 <= month <= 12 and 1 <= day <= _days(year, month) and hour < 24
                and minute < 60 and second < 60):
            raise IntegrityError("bad time")
    if not r.done():
        raise IntegrityError("bad validity")


def _days(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _ed25519_key(spki: bytes) -> bytes:
    """The raw key of an Ed25519 SubjectPublicKeyInfo; b"" for any other algorithm."""
    r = _Reader(spki)
    algorithm = r.element(0x30)[2]
    _, bits, _ = r.element(0x03)
    if not r.done():
        raise IntegrityError("bad public key")
    if algorithm != ED25519_ALGORITHM:
        return b""
    if len(bits) != 33 or bits[0] != 0:
        raise IntegrityError("bad Ed25519 public key")
    return bits[1:]


def _common_name(name: bytes) -> str:
    """The one UTF8String common name of a Name that holds nothing else."""
    rdn = _Reader(name)
    _, attributes, _ = rdn.element(0x31)
    attribute = _Reader(attributes)
    _, pair, _ = attribute.element(0x30)
    fields = _Reader(pair)
    oid = fields.element(0x06)[2]
    _, value, _ = fields.element(0x0C)
    if not (rdn.done() and attribute.done() and fields.done()) or oid != _CN or not value:
        raise IntegrityError("the name is not one common name")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise IntegrityError("the common name is not UTF-8") from None


def _extensions(content: bytes) -> bytes | None:
    """The basic constraints' value (None: absent), after checking that the extensions are
    at most that one and our alternative name, each once and in DER."""
    outer = _Reader(content)
    _, listed, _ = outer.element(0x30)
    if not outer.done() or not listed:
        raise IntegrityError("bad extensions")
    r = _Reader(listed)
    seen: dict[bytes, bytes] = {}
    while not r.done():
        ext = _Reader(r.element(0x30)[1])
        oid = ext.element(0x06)[2]
        critical = ext.data[ext.pos:ext.pos + 3] == _TRUE
        if critical:
            ext.element(0x01)
        _, value, _ = ext.element(0x04)
        if not ext.done() or oid in seen:
            raise IntegrityError("bad extension")
        if oid == _SUBJECT_ALT_NAME and not critical and value == OUR_ALT_NAME:
            seen[oid] = value
        elif oid == _BASIC_CONSTRAINTS:
            seen[oid] = _basic_constraints(value)
        else:
            raise IntegrityError("an extension wifisync devices do not make")
    return seen.get(_BASIC_CONSTRAINTS)


def _basic_constraints(value: bytes) -> bytes:
    """``NOT_CA``, or a well-formed ``cA TRUE`` with an optional path length."""
    if value == NOT_CA:
        return value
    outer = _Reader(value)
    _, content, _ = outer.element(0x30)
    r = _Reader(content)
    if not outer.done() or r.element(0x01)[2] != _TRUE:
        raise IntegrityError("bad basic constraints")
    if not r.done():
        _integer(r.element(0x02)[1], positive=False, octets=1)  # a path length
    if not r.done():
        raise IntegrityError("bad basic constraints")
    return value


def certificate(seed: bytes, common_name: str | None, not_before: datetime.datetime,
                not_after: datetime.datetime, serial: int) -> bytes:
    """A self-signed ``CA:FALSE`` certificate of the Ed25519 key ``seed``, in DER.

    With a ``common_name`` it is a device certificate (that name for subject and issuer,
    and our alternative name); with None its names are empty (a throwaway certificate).
    """
    public_key, secret_key = nacl.bindings.crypto_sign_seed_keypair(seed)
    name = _tlv(0x30, b"")
    extensions = _tlv(0x30, _BASIC_CONSTRAINTS + _TRUE + _tlv(0x04, NOT_CA))
    if common_name is not None:
        name = _tlv(0x30, _tlv(0x31, _tlv(0x30, _CN + _tlv(0x0C, common_name.encode()))))
        extensions += _tlv(0x30, _SUBJECT_ALT_NAME + _tlv(0x04, OUR_ALT_NAME))
    tbs = _tlv(0x30, _V3 + _tlv(0x02, _positive(serial)) + ED25519_ALGORITHM + name
               + _tlv(0x30, _time(not_before) + _time(not_after)) + name
               + _tlv(0x30, ED25519_ALGORITHM + _tlv(0x03, b"\x00" + public_key))
               + _tlv(0xA3, _tlv(0x30, extensions)))
    signature = nacl.bindings.crypto_sign(tbs, secret_key)[:nacl.bindings.crypto_sign_BYTES]
    return _tlv(0x30, tbs + ED25519_ALGORITHM + _tlv(0x03, b"\x00" + signature))


def pkcs8_ed25519(seed: bytes) -> bytes:
    """The unencrypted PKCS#8 form of an Ed25519 key (what :func:`ed25519_seed` reads)."""
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    return _PKCS8_ED25519 + seed


def _tlv(tag: int, content: bytes) -> bytes:
    """One DER element, its length in the shortest form."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _positive(value: int) -> bytes:
    """A positive INTEGER's content in the shortest form (a leading zero keeps it positive)."""
    if value <= 0:
        raise ValueError("a serial is positive")
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


def _time(when: datetime.datetime) -> bytes:
    """A time in UTC to the second: UTCTime before 2050, GeneralizedTime from 2050 on."""
    when = when.astimezone(datetime.UTC)
    if when.year < 2050:
        return _tlv(0x17, when.strftime("%y%m%d%H%M%SZ").encode())
    return _tlv(0x18, f"{when.year:04d}".encode() + when.strftime("%m%d%H%M%SZ").encode())


def pem_to_der(pem: bytes, label: bytes = b"CERTIFICATE") -> bytes:
    """The DER inside one PEM block of ``label`` (nothing else in the text)."""
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    text = pem.strip()
    if not (text.startswith(begin) and text.endswith(end)):
        raise IntegrityError(f"not one PEM {label.decode()}")
    try:
        return base64.b64decode(b"".join(text[len(begin):-len(end)].split()), validate=True)
    except binascii.Error:
        raise IntegrityError(f"not one PEM {label.decode()}") from None


def der_to_pem(der: bytes, label: bytes = b"CERTIFICATE") -> bytes:
    """PEM of DER in lines of 64 characters (as OpenSSL and ``cryptography`` write it)."""
    text = base64.b64encode(der)
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return b"\n".join([b"-----BEGIN " + label + b"-----", *lines,
                       b"-----END " + label + b"-----"]) + b"\n"


def ed25519_seed(pkcs8_der: bytes) -> bytes:
    """The 32-byte seed of an unencrypted PKCS#8 Ed25519 key (RFC 8410, as devices write
    their key file); :class:`IntegrityError` for anything else."""
    if len(pkcs8_der) != len(_PKCS8_ED25519) + 32 or not pkcs8_der.startswith(_PKCS8_ED25519):
        raise IntegrityError("not an unencrypted PKCS#8 Ed25519 key")
    return pkcs8_der[len(_PKCS8_ED25519):]
