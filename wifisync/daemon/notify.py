"""The notify socket: the CLI says "I committed records" in one byte, without HTTP.

Every CLI write ends by telling its daemon. Over the HTTP control socket that took
aiohttp about five loop iterations per connection (accept, transport, protocol, request,
handler: 0.5-0.65 ms here), more than the daemon then needs to push the change. This
Unix socket, beside the control socket and like it mode 0600 from the first moment,
takes one request byte: ``w`` (answer once what is committed by now was sent) or ``n``
(answer at once). The answer is how many records were pushed, as ASCII digits and a
newline; then the daemon closes. Anything else is closed unanswered. It carries no
secret, and a client that never sends is dropped after ``REQUEST_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("wifisync.daemon")

WAIT, NO_WAIT = b"w", b"n"  # the two requests
REQUEST_SECONDS = 5.0  # a connection that sends nothing for this long is closed
MAX_OPEN = 64  # connections at once; more are closed at once (the CLI falls back to HTTP)


class NotifySocket:
    """Serves the notify socket on the running loop; the daemon supplies what notify does."""

    def __init__(self, path: Path, notify: Callable[[bool], Awaitable[int]]) -> None:
        self.path = path
        self._notify = notify
        self._listener: socket.socket | None = None
        self._open: dict[socket.socket, asyncio.TimerHandle] = {}  # waiting for their byte
        self._answering: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Listen at ``path`` (a stale socket is replaced)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        listener.listen(MAX_OPEN)
        listener.setblocking(False)
        self._listener = listener
        asyncio.get_running_loop().add_reader(listener.fileno(), self._accept)

    def _accept(self) -> None:
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors: the CLI falls back to HTTP
                log.warning("notify socket: %s", exc)
                return
            if len(self._open) + len(self._answering) >= MAX_OPEN:
                conn.close()
                continue
            conn.setblocking(False)
            request = _request(conn)  # the CLI sends its byte with the connect: usually here
            if request is None:
                self._open[conn] = loop.call_later(REQUEST_SECONDS, self._drop, conn)
                loop.add_reader(conn.fileno(), self._readable, conn)
            else:
                self._serve(conn, request)

    def _readable(self, conn: socket.socket) -> None:
        request = _request(conn)
        if request is not None:
            self._forget(conn)
            self._serve(conn, request)

    def _serve(self, conn: socket.socket, request: bytes) -> None:
        """Answer a request (no longer watched), or close the connection on anything else."""
        if request not in (WAIT, NO_WAIT):
            conn.close()
            return
        pushed = self._notify(request == WAIT)  # pushes (or wakes the pusher) now, not a loop later
        task = asyncio.get_running_loop().create_task(self._answer(conn, pushed))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, conn: socket.socket, pushed_by: Awaitable[int]) -> None:
        try:
            pushed = await pushed_by
            with contextlib.suppress(OSError):  # the CLI gave up waiting
                conn.send(b"%d\n" % pushed)
        finally:
            conn.close()

    def _forget(self, conn: socket.socket) -> None:
        """Stop watching a connection (its request is in, or it is being dropped)."""
        timer = self._open.pop(conn, None)
        if timer is not None:
            timer.cancel()
            asyncio.get_running_loop().remove_reader(conn.fileno())

    def _drop(self, conn: socket.socket) -> None:
        self._forget(conn)
        conn.close()

    async def close(self) -> None:
        """Stop listening, drop waiting connections, finish the answers under way."""
        if self._listener is not None:
            asyncio.get_running_loop().remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
        for conn in list(self._open):
            self._drop(conn)
        if self._answering:
            await asyncio.gather(*self._answering, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _request(conn: socket.socket) -> bytes | None:
    """The request byte; b"" when the client hung up or failed, None while none came."""
    try:
        return conn.recv(1)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""
