"""Certificates carried in MEMBER records: checked to be what a wifisync device makes.

A member's certificate becomes a TLS trust anchor on every device, so one that is a CA
(it could vouch for certificates it mints), holds another key type, or names another
device than its own key is refused wherever a MEMBER body is parsed.
"""

from __future__ import annotations

import functools

from wifisync.errors import IntegrityError
from wifisync.model import certder
from wifisync.model.deviceid import device_id_for, format_device_id
from wifisync.model.identity import verify_signature


@functools.lru_cache(maxsize=4096)
def checked_member_certificate(cert_der: bytes) -> bytes:
    """The device ID of a member certificate; :class:`IntegrityError` if it is not one.

    Checked: DER of the device certificate layout (:mod:`wifisync.model.certder`), an
    Ed25519 key, ``CA:FALSE``, signed by its own key (the device key) with itself as the
    issuer, and a subject that names no device but the one its key hashes to.
    """
    try:
        cert = certder.parse(cert_der)
    except IntegrityError as exc:
        raise IntegrityError(f"malformed member certificate ({exc})") from None
    if not cert.public_key:
        raise IntegrityError("member certificate key is not Ed25519")
    if cert.basic_constraints is None:
        raise IntegrityError("member certificate does not say CA:FALSE")
    if cert.basic_constraints != certder.NOT_CA:
        raise IntegrityError("member certificate is a CA certificate")
    try:
        if cert.issuer != cert.subject:
            raise IntegrityError("issuer is not the subject")
        verify_signature(cert.public_key, cert.signature, cert.tbs)
    except IntegrityError as exc:
        raise IntegrityError("member certificate is not signed by its own device key") from exc
    device_id = device_id_for(cert.public_key)
    if cert.common_name != format_device_id(device_id):
        raise IntegrityError("member certificate names another device than its key")
    return device_id
