"""The peer-facing listener on asyncio's loop and on uvloop's: a member gets through, even
when its first bytes wait in the socket before the accept; strangers get no byte of HTTP."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from wifisync.daemon.admission import Admission, AdmissionLimits
from wifisync.daemon.listener import Gate, PeerListener, bind, serve
from wifisync.model.identity import DeviceIdentity
from wifisync.net import tls
from wifisync.net.address import SYNC_PATH

VAULT = bytes(range(32))
REQUEST = b"GET " + SYNC_PATH.encode() + b" HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n\r\n"


def _uvloop() -> asyncio.AbstractEventLoop:
    uvloop = pytest.importorskip("uvloop")
    return uvloop.new_event_loop()


LOOPS = pytest.mark.parametrize("new_loop", [asyncio.new_event_loop, _uvloop],
                                ids=["asyncio", "uvloop"])


def _run(new_loop: Callable[[], asyncio.AbstractEventLoop],
         main: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(main)


def _creds(tmp_path: Path, name: str) -> tls.Credentials:
    DeviceIdentity.generate().save(tmp_path / name)
    return tls.Credentials.in_dir(tmp_path / name)


def _pem(creds: tls.Credentials) -> bytes:
    return creds.cert_file.read_bytes()


async def _listen(tmp_path: Path, member: tls.Credentials,
                  limits: AdmissionLimits | None = None
                  ) -> tuple[int, PeerListener, web.AppRunner]:
    """A listener for device ``me`` whose one other member is ``member``; no pairing window."""
    me = _creds(tmp_path, "me")
    member_der = ssl.PEM_cert_to_DER_cert(_pem(member).decode())
    app = web.Application()

    async def sync(_request: web.Request) -> web.Response:
        return web.Response(text="member")

    app.router.add_get(SYNC_PATH, sync)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    runner, listener = await serve(app, Gate(lambda cert: cert == member_der, lambda: False),
                                   sock, tls.TrustedListener(me, [_pem(member)], VAULT).context,
                                   Admission(limits or AdmissionLimits()))
    (tmp_path / "me.pem").write_bytes(_pem(me))
    return port, listener, runner


def _ask(port: int, context: ssl.SSLContext) -> bytes:
    """Connect, send a request right after the handshake and read until the server closes
    (blocking, in a thread of its own); what the server wrote, b"" when it refused."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3.0) as raw, \
                context.wrap_socket(raw, server_hostname=tls.member_server_name(VAULT)) as s:
            s.sendall(REQUEST)
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
            return answer
    except (ssl.SSLError, ConnectionError):
        return b""


def _in_thread(port: int, context: ssl.SSLContext) -> Future[bytes]:
    done: Future[bytes] = Future()

    def ask() -> None:
        try:
            done.set_result(_ask(port, context))
        except BaseException as exc:  # a timeout: the test fails with it
            done.set_exception(exc)

    threading.Thread(target=ask, daemon=True).start()
    return done


def _anonymous_client() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@LOOPS
def test_a_member_whose_hello_arrived_before_the_accept_gets_through(
        tmp_path: Path, new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    """The ClientHello already waits in the socket when the loop accepts: none of it may be
    read outside TLS (uvloop starts reading a served connection right after its
    ``connection_made``, whatever that asked, so the handshake hung until its timeout)."""
    member = _creds(tmp_path, "member")

    async def main() -> None:
        port, listener, runner = await _listen(tmp_path, member)
        try:
            context = tls.client_context(member, [(tmp_path / "me.pem").read_bytes()])
            answer = _in_thread(port, context)
            time.sleep(0.3)  # the loop is held: the client connects and sends its hello now
            reply = await asyncio.wrap_future(answer)
            assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"member"), reply
            assert (listener.admission.handshakes, listener.admission.unauthenticated) == (0, 0)
        finally:
            await listener.close()
            await runner.cleanup()

    _run(new_loop, main())


@LOOPS
def test_a_stranger_and_a_client_without_certificate_get_no_byte_of_http(
        tmp_path: Path, new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    member, stranger = _creds(tmp_path, "member"), _creds(tmp_path, "stranger")

    async def main() -> None:
        port, listener, runner = await _listen(tmp_path, member)
        try:
            me = (tmp_path / "me.pem").read_bytes()
            for context in (tls.client_context(stranger, [me]), _anonymous_client()):
                assert await asyncio.wrap_future(_in_thread(port, context)) == b""
            for _ in range(100):  # the listener settles its count once it saw them go
                if (listener.admission.handshakes, listener.admission.unauthenticated) == (0, 0):
                    break
                await asyncio.sleep(0.01)
            assert (listener.admission.handshakes, listener.admission.unauthenticated) == (0, 0)
        finally:
            await listener.close()
            await runner.cleanup()

    _run(new_loop, main())


def _silent(port: int) -> bytes:
    """A client that connects and sends nothing; what it read until the server hung up."""
    with socket.create_connection(("127.0.0.1", port), timeout=3.0) as raw:
        return raw.recv(100)


@LOOPS
def test_handshakes_left_to_time_out_are_strikes_and_half_open_ones_are_settled(
        tmp_path: Path, new_loop: Callable[[], asyncio.AbstractEventLoop],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("wifisync.daemon.listener.HANDSHAKE_TIMEOUT", 0.2)
    member = _creds(tmp_path, "member")

    async def main() -> None:
        port, listener, runner = await _listen(tmp_path, member, AdmissionLimits(strikes=2))
        try:
            with socket.create_connection(("127.0.0.1", port)) as raw:  # leaves at once
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            for _ in range(2):
                assert await asyncio.to_thread(_silent, port) == b""  # the server hung up
            for _ in range(100):
                if (listener.admission.handshakes, listener.admission.unauthenticated) == (0, 0):
                    break
                await asyncio.sleep(0.01)
            assert (listener.admission.handshakes, listener.admission.unauthenticated) == (0, 0)
            assert not listener.admission.accept("127.0.0.1", time.monotonic())  # 2 strikes
        finally:
            await listener.close()
            await runner.cleanup()

    _run(new_loop, main())


@LOOPS
def test_a_connection_that_cannot_be_taken_does_not_end_the_accepting(
        tmp_path: Path, new_loop: Callable[[], asyncio.AbstractEventLoop],
        monkeypatch: pytest.MonkeyPatch) -> None:
    member = _creds(tmp_path, "member")

    async def main() -> None:
        port, listener, runner = await _listen(tmp_path, member)
        accept = listener.admission.accept
        calls = []

        def broken_once(source: str, now: float) -> bool:
            calls.append(source)
            if len(calls) == 1:
                raise RuntimeError("a bug in admission")
            return accept(source, now)

        monkeypatch.setattr(listener.admission, "accept", broken_once)
        try:
            context = tls.client_context(member, [(tmp_path / "me.pem").read_bytes()])
            assert await asyncio.wrap_future(_in_thread(port, context)) == b""  # dropped
            reply = await asyncio.wrap_future(_in_thread(port, context))
            assert reply.startswith(b"HTTP/1.1 200"), reply  # the next one gets through
        finally:
            await listener.close()
            await runner.cleanup()

    _run(new_loop, main())
