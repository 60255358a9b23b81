"""Certificates carried in MEMBER records: checked to be what a wifisync device makes.

A member's certificate becomes a TLS trust anchor on every device, so one that is a CA
(it could vouch for certificates it mints), holds another key type, or names another
device than its own key is refused wherever a MEMBER body is parsed.
"""

from __future__ import annotations

import functools

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from wifisync.errors import IntegrityError
from wifisync.model.deviceid import device_id_for, format_device_id


@functools.lru_cache(maxsize=4096)
def checked_member_certificate(cert_der: bytes) -> bytes:
    """The device ID of a member certificate; :class:`IntegrityError` if it is not one.

    Checked: DER that parses, an Ed25519 key, ``CA:FALSE``, signed by its own key (the
    device key), and a subject that names no device but the one its key hashes to.
    """
    try:
        cert = x509.load_der_x509_certificate(cert_der)
        key = cert.public_key()
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        subject_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except x509.ExtensionNotFound as exc:
        raise IntegrityError("member certificate does not say CA:FALSE") from exc
    except (ValueError, x509.InvalidVersion, UnsupportedAlgorithm) as exc:
        raise IntegrityError("malformed member certificate") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise IntegrityError("member certificate key is not Ed25519")
    if constraints.ca:
        raise IntegrityError("member certificate is a CA certificate")
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
        raise IntegrityError("member certificate is not signed by its own device key") from exc
    device_id = device_id_for(key.public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw))
    if any(a.value != format_device_id(device_id) for a in subject_names):
        raise IntegrityError("member certificate names another device than its key")
    return device_id
