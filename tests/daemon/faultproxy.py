"""A small fault-injecting TCP proxy on loopback: forwards, or stalls, or cuts, on command.

Runs its own event loop in a thread so a synchronous test can put it in front of a
daemon and flip faults while real daemon processes talk through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field


@dataclass
class FaultProxy:
    """Listens on 127.0.0.1 and forwards each connection to ``target_port``."""

    target_port: int
    port: int = 0
    stalled: threading.Event = field(default_factory=threading.Event)
    connections: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    def start(self) -> FaultProxy:
        """Start serving; ``self.port`` is where to dial."""
        ready = threading.Event()

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    @property
    def address(self) -> str:
        """HOST:PORT of the proxy."""
        return f"127.0.0.1:{self.port}"

    def stall(self) -> None:
        """Stop moving bytes either way, and ends too: connections stay open (a hung peer, or
        one whose machine lost power)."""
        self.stalled.set()

    def resume(self) -> None:
        """Move bytes again."""
        self.stalled.clear()

    def cut(self) -> None:
        """Reset every open connection."""
        assert self._loop is not None

        def cut_all() -> None:
            for w in self._writers:
                w.transport.abort()
            self._writers.clear()

        self._loop.call_soon_threadsafe(cut_all)

    def close(self) -> None:
        """Stop the proxy and its thread."""
        if self._loop is None:
            return
        self.cut()

        async def stop() -> None:
            assert self._server is not None
            self._server.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers += [writer, up_w]
        await asyncio.gather(self._pump(reader, up_w), self._pump(up_r, writer),
                             return_exceptions=True)
        for w in (writer, up_w):
            with contextlib.suppress(Exception):
                w.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while True:
            data = await src.read(65536)
            while self.stalled.is_set():  # hold the bytes and the end, bounded by the test's
                await asyncio.sleep(0.01)  # own timeouts
            if not data:
                dst.write_eof() if dst.can_write_eof() else dst.close()
                return
            dst.write(data)
            await dst.drain()
