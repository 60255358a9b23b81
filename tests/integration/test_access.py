"""Who may talk to a daemon: members only, pairing clients only in a window, revoked never again."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509

from tests.daemon.faultproxy import FaultProxy
from tests.integration.conftest import Device, wait_for
from wifisync.errors import IntegrityError
from wifisync.model.identity import DeviceIdentity, public_key_of_certificate
from wifisync.net import tls
from wifisync.store.sqlite import SqliteStore
from wifisync.sync.messages import MAX_FRAME_BYTES
from wifisync.vault.unlocked import vault_id_of


def _raw_request(port: int, context: ssl.SSLContext, path: str,
                 server_name: str = tls.SERVER_NAME) -> bytes:
    """TLS-connect, send one HTTP request, return every byte that comes back (b"" if none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=server_name) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                          .encode())
                chunks = []
                while chunk := s.recv(4096):
                    chunks.append(chunk)
                return b"".join(chunks)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return b""


def _context_with(cert_dir: Path | None, server_pem: bytes | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    if server_pem is None:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cadata=server_pem.decode())
    if cert_dir is not None:
        creds = tls.Credentials.in_dir(cert_dir)
        ctx.load_cert_chain(creds.cert_file, creds.key_file)
    return ctx


def _server_pem(d: Device) -> bytes:
    return DeviceIdentity.load(d.home.data_dir).cert_pem


def _member_name(d: Device) -> str:
    """The SNI a member sends this hour (derived from the vault ID)."""
    store = SqliteStore(d.home.store_file)
    try:
        return tls.member_server_name(vault_id_of(store))
    finally:
        store.close()


def _shown_certificate(port: int, server_name: str | None) -> bytes:
    """What a stranger sees: the certificate shown to a client with no certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=server_name) as s:
        der = s.getpeercert(binary_form=True)
    assert der
    return der


@pytest.fixture(scope="module")
def listening(module_devices: Callable[..., list[Device]]) -> tuple[Device, Device]:
    """Members A (its daemon running) and B (no daemon), shared by the probes below.

    The probes are refused; twelve wasted connections a minute shut a source out, so a test
    that expects an answer after the first probe starts its own daemon."""
    a, b = module_devices(2)
    a.start()
    return a, b


def test_a_stranger_is_shown_a_certificate_that_names_nothing(
        listening: tuple[Device, Device]) -> None:
    """Without the member server name, TLS shows a throwaway certificate, not the device's."""
    a, b = listening
    identity = DeviceIdentity.load(a.home.data_dir)
    id_text = identity.device_id_text.encode()
    seen = [_shown_certificate(a.port, name)
            for name in (None, tls.SERVER_NAME, "0" * 32 + "." + tls.SERVER_NAME)]
    for der in seen:
        cert = x509.load_der_x509_certificate(der)
        assert der != identity.cert_der
        assert identity.public_key not in der  # nor its key (a certificate of no device:
        with pytest.raises(IntegrityError):  # the reader of device certificates refuses it)
            public_key_of_certificate(der)
        assert id_text not in der and identity.short_id.encode() not in der
        assert len(cert.subject) == 0 and len(cert.issuer) == 0
    assert _shown_certificate(a.port, _member_name(a)) == identity.cert_der
    # and a member's certificate under a stranger's name is refused in the handshake
    assert _raw_request(a.port, _context_with(b.home.data_dir, None), "/sync") == b""


def test_a_certificate_that_is_not_a_members_gets_no_http_response(
        listening: tuple[Device, Device], tmp_path: Path) -> None:
    a, _b = listening
    stranger = tmp_path / "stranger"
    DeviceIdentity.generate().save(stranger)
    for path in ("/sync", "/pair", "/status", "/"):
        assert _raw_request(a.port, _context_with(stranger, _server_pem(a)), path,
                            _member_name(a)) == b""
    assert a.proc is not None and a.proc.poll() is None


def test_refused_certificates_are_logged_once_per_window_not_per_attempt(
        devices: Callable[..., list[Device]], tmp_path: Path) -> None:
    (a,) = devices(1)
    a.start()
    stranger = tmp_path / "stranger"
    DeviceIdentity.generate().save(stranger)
    for _ in range(5):
        assert _raw_request(a.port, _context_with(stranger, _server_pem(a)), "/sync",
                            _member_name(a)) == b""
    wait_for(lambda: "refused a certificate" in a.log(), 5, "the refusal in the log")
    time.sleep(0.3)  # any further line would have been written by now
    lines = [ln for ln in a.log().splitlines() if "refused a certificate" in ln]
    assert len(lines) == 1, lines
    assert "127.0.0.1" in lines[0]


def test_a_client_without_certificate_reaches_nothing_without_a_pairing_window(
        listening: tuple[Device, Device]) -> None:
    a, _b = listening
    for path in ("/sync", "/pair", "/status", "/"):
        assert _raw_request(a.port, _context_with(None, _server_pem(a)), path) == b""


def test_a_members_certificate_gets_an_answer(devices: Callable[..., list[Device]]) -> None:
    a, b = devices(2)  # its own daemon: the shared one has refused this source several times
    a.start()
    answer = _raw_request(a.port, _context_with(b.home.data_dir, _server_pem(a)), "/sync",
                          _member_name(a))
    assert answer.startswith(b"HTTP/1.1 ")  # a plain GET is no WebSocket upgrade: 4xx, but HTTP


def test_revoke_cuts_the_open_session_and_keeps_the_device_out(
        devices: Callable[..., list[Device]]) -> None:
    a, b, c = devices(3)
    b.peers = [a]
    c.peers = [a]
    for d in (a, b, c):
        d.start()
    wait_for(lambda: a.connected_to(b) and a.connected_to(c), 5, "both sessions")
    started = time.monotonic()
    a.cli.ok("revoke", b.device_id[:7])
    wait_for(lambda: not a.connected_to(b) and not b.connected_to(a), 5, "the cut")
    assert time.monotonic() - started < 2.0
    wait_for(lambda: "no longer a member" in c.log(), 5, "C to learn of the revocation")
    time.sleep(1.0)  # B's dialer would be back by now if it were let in
    assert not a.connected_to(b) and not c.connected_to(b)
    assert a.connected_to(c)
    devices_on_a = a.cli.ok("devices", "--json")
    assert '"revoked": true' in devices_on_a
    # B heard of it before the cut: it says so once, stops dialing, and writes nothing.
    wait_for(lambda: "was revoked" in b.log(), 5, "B to notice it was revoked")
    assert b.log().count("no longer dials") == 1
    assert "revoked" in b.cli.fails("add", "written by a revoked device", code=2)
    assert "revoked" in b.cli.ok("status")
    assert "revoked" in b.cli.ok("devices")


async def _member_ws(member: Device, target: Device) -> aiohttp.ClientWebSocketResponse:
    creds = tls.Credentials.in_dir(member.home.data_dir)
    ctx = tls.client_context(creds, [_server_pem(target)])
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(f"https://{target.address}/sync", ssl=ctx,
                                  server_hostname=_member_name(target), max_msg_size=0)
    ws._wifisync_session = session  # type: ignore[attr-defined]
    return ws


async def _send_and_wait_close(member: Device, target: Device, frame: bytes) -> int | None:
    ws = await _member_ws(member, target)
    try:
        await ws.send_bytes(frame)
        async with asyncio.timeout(5):
            while True:
                msg = await ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.ERROR):
                    return ws.close_code
    finally:
        await ws.close()
        await ws._wifisync_session.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("frame", [b"\xc1 not msgpack", b"\x93\x01\x02", b"\x00" * 100],
                         ids=["garbage", "wrong-shape", "zeros"])
def test_a_malformed_frame_from_a_member_closes_its_session_and_applies_nothing(
        devices: Callable[..., list[Device]], frame: bytes) -> None:
    a, b = devices(2)
    a.start()
    before = a.record_count()
    code = asyncio.run(_send_and_wait_close(b, a, frame))
    assert code is not None and code >= 1002
    assert a.record_count() == before
    assert a.proc is not None and a.proc.poll() is None


def test_an_oversized_frame_closes_the_session(devices: Callable[..., list[Device]]) -> None:
    a, b = devices(2)
    a.start()
    before = a.record_count()
    code = asyncio.run(_send_and_wait_close(b, a, b"\x00" * (MAX_FRAME_BYTES + 1)))
    assert code in (1006, 1009)  # 1006 when the close overtakes our own sending
    wait_for(lambda: "too big" in a.log().lower(), 5, "A to log the oversized frame")
    assert a.record_count() == before


def test_a_peer_that_stalls_is_taken_for_dead(devices: Callable[..., list[Device]]) -> None:
    a, b = devices(2)
    proxy = FaultProxy(a.port).start()
    try:
        b.peers = []
        b.start("--peer", proxy.address)
        a.start()
        wait_for(lambda: a.connected_to(b) and b.connected_to(a), 5, "the session")
        proxy.stall()
        stalled_at = time.monotonic()
        wait_for(lambda: "nothing heard" in a.log() and "nothing heard" in b.log(), 6,
                 "both ends to notice the stall")
        assert time.monotonic() - stalled_at < 4.0  # peer_timeout is 2 s in these tests
    finally:
        proxy.close()
