"""TLS contexts: members' pinned certificates are the only trust, and trust changes at run time."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from wifisync.model.identity import DeviceIdentity, device_id_of_certificate
from wifisync.net.tls import (
    NAME_WINDOW_SECONDS,
    SERVER_NAME,
    Credentials,
    TrustedListener,
    client_context,
    der_to_pem,
    member_server_name,
    peer_certificate,
)

VAULT = bytes(range(32))


def _device(tmp_path: Path, name: str) -> tuple[DeviceIdentity, Credentials]:
    identity = DeviceIdentity.generate()
    identity.save(tmp_path / name)
    return identity, Credentials.in_dir(tmp_path / name)


async def _who(listener: TrustedListener, creds: Credentials, trust: list[bytes],
               name: str | None = None) -> str:
    """Connect as ``creds``; the server answers with the device ID it verified, or nothing."""

    async def handle(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        cert = peer_certificate(w.get_extra_info("ssl_object"))
        w.write(device_id_of_certificate(cert).hex().encode() if cert else b"anonymous")
        await w.drain()
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=listener.context)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context(creds, trust),
            server_hostname=name or member_server_name(VAULT))
        try:
            return (await reader.read(200)).decode()
        except (ssl.SSLError, ConnectionResetError):
            return ""
        finally:
            writer.close()
    finally:
        server.close()


async def test_a_member_is_verified_and_a_stranger_gets_nothing(tmp_path: Path) -> None:
    a, a_creds = _device(tmp_path, "a")
    b, b_creds = _device(tmp_path, "b")
    _c, c_creds = _device(tmp_path, "c")
    listener = TrustedListener(a_creds, [a.cert_pem, b.cert_pem], VAULT)
    assert await _who(listener, b_creds, [a.cert_pem]) == b.device_id.hex()
    assert await _who(listener, c_creds, [a.cert_pem]) == ""


async def test_a_trust_change_applies_to_the_next_handshake(tmp_path: Path) -> None:
    a, a_creds = _device(tmp_path, "a")
    b, b_creds = _device(tmp_path, "b")
    c, c_creds = _device(tmp_path, "c")
    listener = TrustedListener(a_creds, [a.cert_pem, b.cert_pem], VAULT)
    listener.update([a.cert_pem, c.cert_pem])
    assert await _who(listener, c_creds, [a.cert_pem]) == c.device_id.hex()
    assert await _who(listener, b_creds, [a.cert_pem]) == ""


async def test_the_dialer_refuses_a_server_that_is_not_a_member(tmp_path: Path) -> None:
    _a, a_creds = _device(tmp_path, "a")
    b, b_creds = _device(tmp_path, "b")
    c, _c_creds = _device(tmp_path, "c")
    listener = TrustedListener(a_creds, [b.cert_pem], VAULT)
    with pytest.raises(ssl.SSLCertVerificationError):
        await _who(listener, b_creds, [c.cert_pem])


def test_only_tls_13_and_no_session_tickets(tmp_path: Path) -> None:
    a, a_creds = _device(tmp_path, "a")
    listener = TrustedListener(a_creds, [a.cert_pem], VAULT)
    for ctx in (listener.context, client_context(a_creds, [a.cert_pem])):
        assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_3
    assert listener.context.num_tickets == 0
    assert listener.context.verify_mode == ssl.CERT_OPTIONAL


def test_membership_records_der_becomes_the_pem_that_is_trusted(tmp_path: Path) -> None:
    a, _ = _device(tmp_path, "a")
    assert der_to_pem(a.cert_der) == a.cert_pem


async def test_without_the_member_name_even_a_member_is_refused(tmp_path: Path) -> None:
    """The identity context is chosen only for this hour's (or a neighbouring hour's) name."""
    a, a_creds = _device(tmp_path, "a")
    b, b_creds = _device(tmp_path, "b")
    now = [10_000 * NAME_WINDOW_SECONDS + 5.0]
    listener = TrustedListener(a_creds, [a.cert_pem, b.cert_pem], VAULT, clock=lambda: now[0])
    for name in (SERVER_NAME, member_server_name(bytes(32), now[0]),
                 member_server_name(VAULT, now[0] - 2 * NAME_WINDOW_SECONDS)):
        with pytest.raises(ssl.SSLCertVerificationError):  # the throwaway cert is not a's
            await _who(listener, b_creds, [a.cert_pem], name)
    for hours in (-1, 0, 1):
        name = member_server_name(VAULT, now[0] + hours * NAME_WINDOW_SECONDS)
        assert await _who(listener, b_creds, [a.cert_pem], name) == b.device_id.hex()


def test_the_member_name_changes_every_hour_and_needs_the_vault_id() -> None:
    t = 1_000 * NAME_WINDOW_SECONDS
    assert member_server_name(VAULT, t) == member_server_name(VAULT, t + NAME_WINDOW_SECONDS - 1)
    assert member_server_name(VAULT, t) != member_server_name(VAULT, t + NAME_WINDOW_SECONDS)
    assert member_server_name(VAULT, t) != member_server_name(bytes(32), t)
    assert member_server_name(VAULT, t).endswith("." + SERVER_NAME)
