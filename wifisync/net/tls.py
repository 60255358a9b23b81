"""TLS 1.3 contexts whose only trust anchors are the pinned certificates of current members.

The listener admits certificate-less clients too (``CERT_OPTIONAL``) so the pairing
endpoint can reach them; the HTTP layer gates what such a client may do. Trust is
rebuilt whenever membership changes and swapped into new handshakes from
``sni_callback``; connections already open keep their old context, so the daemon
closes a revoked peer's sessions itself.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..identity import CERT_FILE, KEY_FILE, device_id_of_certificate

# The name a client asks for; every wifisync certificate carries it as its only SAN.
SERVER_NAME = "wifisync.invalid"


@dataclass(frozen=True, slots=True)
class Credentials:
    """Where this device's certificate and private key live (``ssl`` loads only from files)."""

    cert_file: Path
    key_file: Path

    @classmethod
    def in_dir(cls, data_dir: Path) -> Credentials:
        """The identity files ``DeviceIdentity.save`` wrote into a home's data dir."""
        return cls(data_dir / CERT_FILE, data_dir / KEY_FILE)


def _tls13_only(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.options |= ssl.OP_NO_COMPRESSION
    return ctx


def _trust(ctx: ssl.SSLContext, trusted_pems: Iterable[bytes]) -> None:
    pems = b"".join(trusted_pems).decode("ascii")
    if pems:
        ctx.load_verify_locations(cadata=pems)


def server_context(creds: Credentials, trusted_pems: Iterable[bytes]) -> ssl.SSLContext:
    """Listener context: our certificate, members' certificates as the only anchors."""
    ctx = _tls13_only(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    ctx.load_cert_chain(creds.cert_file, creds.key_file)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.num_tickets = 0  # no resumption: every connection proves its certificate afresh
    _trust(ctx, trusted_pems)
    return ctx


def client_context(creds: Credentials, trusted_pems: Iterable[bytes]) -> ssl.SSLContext:
    """Dialer context: present our certificate, accept only a member's certificate."""
    ctx = _tls13_only(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    ctx.check_hostname = False  # identity is the pinned certificate, not a name
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(creds.cert_file, creds.key_file)
    _trust(ctx, trusted_pems)
    return ctx


def der_to_pem(cert_der: bytes) -> bytes:
    """A DER certificate (as membership records carry it) in the PEM form ``ssl`` loads."""
    return ssl.DER_cert_to_PEM_cert(cert_der).encode("ascii")


def peer_device_id(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> bytes | None:
    """The device ID of the verified certificate the peer showed, or None when it showed none."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return device_id_of_certificate(der)


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> bytes | None:
    """The DER certificate the peer showed, or None."""
    if ssl_object is None:
        return None
    return ssl_object.getpeercert(binary_form=True) or None


class TrustedListener:
    """Owns the listening context and swaps in a freshly trusted one when membership changes."""

    def __init__(self, creds: Credentials, trusted_pems: Iterable[bytes]) -> None:
        self._creds = creds
        self._current = server_context(creds, trusted_pems)
        self.context = server_context(creds, trusted_pems)
        self.context.sni_callback = self._choose

    def _choose(self, ssl_object: ssl.SSLObject, _name: str | None,
                _ctx: ssl.SSLContext) -> None:
        ssl_object.context = self._current

    def update(self, trusted_pems: Iterable[bytes]) -> None:
        """Trust exactly these certificates for every handshake from now on."""
        self._current = server_context(self._creds, trusted_pems)
