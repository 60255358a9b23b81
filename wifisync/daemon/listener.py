"""The peer-facing HTTPS listener and who may reach what on it.

TLS has already checked a client certificate against the members' certificates;
this layer decides the rest. Before TLS even starts, a connection is counted against
its source and the daemon (``net.admission``): over a cap it is closed at once. A
client with a certificate may open ``/sync`` only while that certificate is still a
current member's. A client without one may reach ``/pair`` only while a pairing window
is open, counted as unauthenticated all along. Everyone else loses the connection
without a single byte of HTTP.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

from wifisync.daemon.admission import Admission, source_of
from wifisync.errors import DaemonError
from wifisync.net.address import PAIR_PATH, SYNC_PATH
from wifisync.net.tls import peer_certificate

log = logging.getLogger("wifisync.daemon")

HANDSHAKE_TIMEOUT = 5.0  # seconds for the TLS handshake
FIRST_REQUEST_TIMEOUT = 10.0  # seconds from handshake to the first request (keep-alive)
MAX_REQUEST_BYTES = 8 * 1024  # headers; a WebSocket upgrade needs little
MAX_BODY_BYTES = 64 * 1024  # pairing messages; sync frames travel over the WebSocket
ACCEPT_RETRY_DELAY = 1.0  # seconds to wait when accept fails (out of descriptors)

RequestHandlerFn = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Gate:
    """The admission policy, asked at connection time and again for each request."""

    def __init__(self, is_member: Callable[[bytes], bool],
                 pairing_open: Callable[[], bool]) -> None:
        self.is_member = is_member
        self.pairing_open = pairing_open

    def admit_connection(self, ssl_object: ssl.SSLObject | None) -> bool:
        """Whether a freshly handshaken connection may send a request at all."""
        cert = peer_certificate(ssl_object)
        if cert is not None:
            return self.is_member(cert)
        return self.pairing_open()

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
    """Wraps aiohttp's protocol: counts the connection until it is a member's, and refuses
    one the gate refuses before any HTTP parsing happens."""

    def __init__(self, inner: asyncio.Protocol, listener: PeerListener, source: str) -> None:
        self._inner = inner
        self._listener = listener
        self._source = source
        self._handshaking = True
        self._member = False
        self._admitted = False
        self._finished = False
        self.wasted = False  # set when the connection held a slot for nothing
        self.made = False  # the TLS layer handed us the connection

    def handshake_over(self) -> None:
        """The TLS handshake ended (either way): it no longer counts as one in progress."""
        if self._handshaking:
            self._handshaking = False
            self._listener.admission.handshake_over(self._source)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The TLS layer calls this once its handshake is done, before any data is read.
        self.made = True
        self.handshake_over()
        ssl_object = transport.get_extra_info("ssl_object")
        if not self._listener.gate.admit_connection(ssl_object):
            cast(asyncio.Transport, transport).abort()  # uvloop's is not a subclass
            return
        self._admitted = True
        if peer_certificate(ssl_object) is not None:  # a current member's (the gate said so)
            self._member = True
            self._listener.admission.authenticated(self._source)
        else:
            self.wasted = True  # pairing: one exchange per window, so reconnects are waste
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.finish()
        if self._admitted:
            self._admitted = False
            self._inner.connection_lost(exc)

    def finish(self) -> None:
        """Settle the bookkeeping once, however the connection ended."""
        if self._finished:
            return
        self._finished = True
        self.handshake_over()
        if not self._member:
            self._listener.admission.closed_unauthenticated(self._source, time.monotonic(),
                                                            wasted=self.wasted)

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()


class PeerListener:
    """Owns the peer-facing listener: the accepts, admission before TLS, the TLS handshakes,
    the gate.

    It accepts each connection itself and hands the socket to the loop with TLS only once
    admission let it in, so no byte of a refused connection is ever read, on asyncio's loop
    as on uvloop's (which starts reading a served connection right after its protocol's
    ``connection_made``, whatever that asked for).
    """

    def __init__(self, gate: Gate, admission: Admission, context: ssl.SSLContext,
                 factory: Callable[[], asyncio.Protocol]) -> None:
        self.gate = gate
        self.admission = admission
        self._context = context
        self._factory = factory
        self._handshakes: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self._accepting: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    def start(self, sock: socket.socket) -> None:
        """Accept connections on a bound, listening socket until :meth:`close` (it owns it)."""
        self._sock = sock
        self._accepting = self._loop.create_task(self._accept(sock))

    async def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, peer = await self._loop.sock_accept(sock)
            except ConnectionAbortedError:  # the client left before we took it
                continue
            except OSError as exc:  # out of descriptors or memory: wait, as asyncio's own does
                log.warning("cannot accept a connection: %s; trying again in %.0f s",
                            exc.strerror or exc, ACCEPT_RETRY_DELAY)
                await asyncio.sleep(ACCEPT_RETRY_DELAY)
                continue
            try:
                self.accepted(conn, str(peer[0]))
            except Exception:  # one connection's trouble must not end the accepting
                log.exception("could not take a connection from %s", peer[0])
                conn.close()

    def accepted(self, conn: socket.socket, host: str) -> None:
        """Start the handshake of a fresh connection if its source and the daemon have room."""
        source = source_of(host)
        if not self.admission.accept(source, time.monotonic()):
            conn.close()
            return
        task = self._loop.create_task(self._upgrade(conn, source))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _upgrade(self, conn: socket.socket, source: str) -> None:
        gated = _GatedProtocol(self._factory(), self, source)
        try:
            # the loop owns the socket from here on, and closes it if the handshake fails
            await self._loop.connect_accepted_socket(
                lambda: gated, conn, ssl=self._context,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT, ssl_shutdown_timeout=2.0)
        except Exception as exc:  # timed out, not TLS, a refused certificate: nothing to say
            # the TLS layer ends a handshake that ran out of time with ConnectionAbortedError
            gated.wasted = isinstance(exc, (TimeoutError, ConnectionAbortedError))
            gated.finish()
            if isinstance(exc, ssl.SSLCertVerificationError):
                # a revoked or never-paired device that keeps trying: the repeat limiter of
                # the daemon's log lets one such line through per source and window
                log.warning("refused a certificate that is not a current member's from %s "
                            "(a revoked or never paired device)", source)
        except BaseException:
            gated.finish()
            raise
        else:
            if not gated.made:  # the connection was lost as the handshake ended
                gated.finish()
        finally:
            gated.handshake_over()

    async def close(self) -> None:
        """Stop accepting and abandon every handshake still in progress (the daemon stops)."""
        if self._accepting is not None:
            self._accepting.cancel()
            await asyncio.gather(self._accepting, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()
        for task in list(self._handshakes):
            task.cancel()
        await asyncio.gather(*self._handshakes, return_exceptions=True)


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
                context: ssl.SSLContext, admission: Admission
                ) -> tuple[web.AppRunner, PeerListener]:
    """Start the HTTPS listener on a bound socket."""
    app.middlewares.append(gate.middleware)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           keepalive_timeout=FIRST_REQUEST_TIMEOUT,
                           max_line_size=MAX_REQUEST_BYTES, max_field_size=MAX_REQUEST_BYTES)
    await runner.setup()
    factory: Any = runner.server
    assert factory is not None
    listener = PeerListener(gate, admission, context, factory)
    listener.start(sock)
    return runner, listener
