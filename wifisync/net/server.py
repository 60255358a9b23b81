"""The peer-facing HTTPS listener and who may reach what on it.

TLS has already checked a client certificate against the members' certificates;
this layer decides the rest. A client with a certificate may open ``/sync`` only
while that certificate is still a current member's. A client without one may reach
``/pair`` only while a pairing window is open, and only a few such clients at a
time. Everyone else loses the connection without a single byte of HTTP.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..errors import DaemonError
from .tls import peer_certificate

log = logging.getLogger("wifisync.daemon")

SYNC_PATH = "/sync"
PAIR_PATH = "/pair"
HANDSHAKE_TIMEOUT = 5.0  # seconds for the TLS handshake
FIRST_REQUEST_TIMEOUT = 10.0  # seconds from handshake to the first request (keep-alive)
MAX_UNAUTHENTICATED = 4  # certificate-less connections at once (pairing only)
MAX_REQUEST_BYTES = 8 * 1024  # headers; a WebSocket upgrade needs little
MAX_BODY_BYTES = 64 * 1024  # pairing messages; sync frames travel over the WebSocket

RequestHandlerFn = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Gate:
    """The admission policy, asked at connection time and again for each request."""

    def __init__(self, is_member: Callable[[bytes], bool],
                 pairing_open: Callable[[], bool]) -> None:
        self.is_member = is_member
        self.pairing_open = pairing_open
        self.unauthenticated = 0

    def admit_connection(self, ssl_object: ssl.SSLObject | None) -> bool:
        """Whether a freshly handshaken connection may send a request at all."""
        cert = peer_certificate(ssl_object)
        if cert is not None:
            return self.is_member(cert)
        return self.pairing_open() and self.unauthenticated < MAX_UNAUTHENTICATED

    def admit_request(self, request: web.BaseRequest) -> bool:
        """Whether this request may reach its handler."""
        cert = peer_certificate(request.transport.get_extra_info("ssl_object")
                                if request.transport else None)
        if cert is None:
            return request.path == PAIR_PATH and self.pairing_open()
        return request.path == SYNC_PATH and self.is_member(cert)

    @web.middleware
    async def middleware(self, request: web.Request, handler: RequestHandlerFn
                         ) -> web.StreamResponse:
        """Drop a request the policy refuses: abort the connection, answer nothing."""
        if not self.admit_request(request):
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPForbidden()  # never written: the transport is gone
        return await handler(request)


class _GatedProtocol(asyncio.Protocol):
    """Wraps aiohttp's protocol: refuses a connection before any HTTP parsing happens."""

    def __init__(self, inner: asyncio.Protocol, gate: Gate) -> None:
        self._inner = inner
        self._gate = gate
        self._admitted = False
        self._anonymous = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        if not self._gate.admit_connection(ssl_object):
            assert isinstance(transport, asyncio.Transport)
            transport.abort()
            return
        self._admitted = True
        self._anonymous = peer_certificate(ssl_object) is None
        if self._anonymous:
            self._gate.unauthenticated += 1
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._admitted:
            if self._anonymous:
                self._gate.unauthenticated -= 1
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()


def bind(host: str, port: int) -> socket.socket:
    """The listening socket; a port in use becomes one clear error."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise DaemonError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise DaemonError(f"cannot listen on {host}:{port}: address already in use "
                              "(another daemon? set daemon.listen or --listen)") from None
        raise DaemonError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


async def serve(app: web.Application, gate: Gate, sock: socket.socket,
                context: ssl.SSLContext) -> tuple[web.AppRunner, asyncio.Server]:
    """Start the HTTPS listener on a bound socket."""
    app.middlewares.append(gate.middleware)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           keepalive_timeout=FIRST_REQUEST_TIMEOUT,
                           max_line_size=MAX_REQUEST_BYTES, max_field_size=MAX_REQUEST_BYTES)
    await runner.setup()
    factory: Any = runner.server
    assert factory is not None
    server = await asyncio.get_running_loop().create_server(
        lambda: _GatedProtocol(factory(), gate), sock=sock, ssl=context,
        ssl_handshake_timeout=HANDSHAKE_TIMEOUT, ssl_shutdown_timeout=2.0)
    return runner, server
