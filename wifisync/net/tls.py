"""TLS 1.3 contexts whose only trust anchors are the pinned certificates of current members.

A daemon shows its identity certificate only to a client that asks for the member server
name, a name derived from the vault ID and the hour (:func:`member_server_name`), which
only members know. Any other client (a stranger, a joining device) gets a throwaway
certificate that names nothing and changes every hour, and no trust anchor at all, so a
client certificate fails its handshake. The listener admits certificate-less clients
(``CERT_OPTIONAL``) so the pairing endpoint can reach them; the HTTP layer gates what
such a client may do. The context is chosen, and member trust swapped in after a
membership change, from ``sni_callback``; connections already open keep their old
context, so the daemon closes a revoked peer's sessions itself.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from wifisync.model import certder
from wifisync.model.crypto import derive_key
from wifisync.model.identity import CERT_FILE, KEY_FILE, SEED_BYTES, make_certificate

# Every wifisync certificate carries this as its only SAN; joining clients ask for it.
SERVER_NAME = "wifisync.invalid"
ANONYMOUS_DAYS = 2  # a throwaway certificate's validity (from a day before it is made)
NAME_WINDOW_SECONDS = 3600  # the member server name changes every hour, as the mDNS tag does
NAME_BYTES = 16


def name_window(now: float) -> int:
    """The number of the server-name window ``now`` (Unix seconds) falls in."""
    return int(now // NAME_WINDOW_SECONDS)


def member_server_name(vault_id: bytes, now: float | None = None) -> str:
    """The SNI a member sends to be shown a daemon's identity: unlinkable without the vault ID."""
    window = name_window(time.time() if now is None else now)
    key = derive_key(vault_id, "tls-server-name")
    mac = hmac.new(key, window.to_bytes(8, "big"), hashlib.sha256).digest()
    return f"{mac[:NAME_BYTES].hex()}.{SERVER_NAME}"


def accepted_server_names(vault_id: bytes, now: float) -> frozenset[str]:
    """Names for the previous, current and next window (clock skew, a dial across the hour)."""
    return frozenset(member_server_name(vault_id, now + d * NAME_WINDOW_SECONDS)
                     for d in (-1, 0, 1))


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


class ServerContext(ssl.SSLContext):
    """A listener context that knows the certificate it shows (pairing binds it)."""

    cert_der: bytes = b""


def _server(cert_file: Path, key_file: Path) -> ServerContext:
    ctx = ServerContext(ssl.PROTOCOL_TLS_SERVER)
    _tls13_only(ctx)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.num_tickets = 0  # no resumption: every connection proves its certificate afresh
    ctx.cert_der = ssl.PEM_cert_to_DER_cert(cert_file.read_text("ascii"))
    return ctx


def server_context(creds: Credentials, trusted_pems: Iterable[bytes]) -> ServerContext:
    """Members' context: our identity certificate, members' certificates as the only anchors."""
    ctx = _server(creds.cert_file, creds.key_file)
    _trust(ctx, trusted_pems)
    return ctx


def anonymous_context() -> ServerContext:
    """A throwaway Ed25519 certificate with an empty subject, and no trust anchor at all."""
    seed = os.urandom(SEED_BYTES)
    with tempfile.TemporaryDirectory(prefix="wifisync-anon-") as folder:  # ssl loads files only
        cert_file, key_file = Path(folder) / "c.pem", Path(folder) / "k.pem"
        cert_file.write_bytes(certder.der_to_pem(make_certificate(seed, None, ANONYMOUS_DAYS)))
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(certder.der_to_pem(certder.pkcs8_ed25519(seed), b"PRIVATE KEY"))
        return _server(cert_file, key_file)


def shown_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> bytes | None:
    """The DER certificate our side of a server connection showed (after the SNI choice)."""
    ctx = ssl_object.context if ssl_object is not None else None
    return ctx.cert_der if isinstance(ctx, ServerContext) and ctx.cert_der else None


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


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> bytes | None:
    """The DER certificate the peer showed, or None."""
    if ssl_object is None:
        return None
    return ssl_object.getpeercert(binary_form=True) or None


class TrustedListener:
    """Owns the listening contexts: identity for the member server name, anonymous otherwise.

    The member context is rebuilt when membership changes; the anonymous one every
    name window, so a stranger cannot link hours by the throwaway key either.
    """

    def __init__(self, creds: Credentials, trusted_pems: Iterable[bytes], vault_id: bytes,
                 clock: Callable[[], float] = time.time) -> None:
        self._creds = creds
        self._vault_id = vault_id
        self._clock = clock
        self._members = server_context(creds, trusted_pems)
        self._window = -1
        self._names: frozenset[str] = frozenset()
        self._anonymous = anonymous_context()
        self.context = anonymous_context()  # only its verify mode and callback are used
        self.context.sni_callback = self._choose

    def _roll(self) -> None:
        now = self._clock()
        window = name_window(now)
        if window != self._window:
            if self._window != -1:
                self._anonymous = anonymous_context()
            self._window = window
            self._names = accepted_server_names(self._vault_id, now)

    def _choose(self, ssl_object: ssl.SSLObject, name: str | None,
                _ctx: ssl.SSLContext) -> None:
        self._roll()
        ssl_object.context = self._members if name in self._names else self._anonymous

    def update(self, trusted_pems: Iterable[bytes]) -> None:
        """Trust exactly these certificates for every member handshake from now on."""
        self._members = server_context(self._creds, trusted_pems)
