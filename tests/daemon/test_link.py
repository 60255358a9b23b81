"""A link over a real loopback WebSocket: the dialer pings, the listener listens; frames are
read ahead of the node and every one is handled, in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from wifisync.daemon.link import Direction, Link, LinkEnd, LinkHub, Timing
from wifisync.sync.session import SessionStats

INTERVAL, TIMEOUT = 0.2, 0.8
LIVE = b"live"  # SlowHub's inbox keeps every frame but those that start so


class QuietHub:
    """A hub with nothing to sync: every frame is ignored."""

    async def link_up(self, link: Link) -> None:
        """Nothing to start."""

    def arrived(self, link: Link, frame: bytes) -> bool:
        """Nothing to keep."""
        return False

    async def frame_in(self, link: Link, frame: bytes) -> None:
        """Nothing to hand over."""

    async def link_down(self, link: Link) -> SessionStats | None:
        """No counters."""
        return None

    def congestion(self, link: Link, congested: bool) -> None:
        """Never congested."""

    def link_synced(self, link: Link) -> None:
        """Never synced."""


class Far:
    """The other end: a raw WebSocket that counts the pings it gets and can answer or not."""

    def __init__(self, ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pings = 0
        self.answer = True

    async def listen(self, ping_every: float | None) -> None:
        """Read until closed; ping every ``ping_every`` s when set (as a dialer does)."""
        async def pinger() -> None:
            while ping_every is not None:
                await asyncio.sleep(ping_every)
                await self.ws.ping()

        task = asyncio.create_task(pinger())
        try:
            async for msg in self.ws:
                if msg.type is aiohttp.WSMsgType.PING:
                    self.pings += 1
                    if self.answer:
                        await self.ws.pong(msg.data)
        finally:
            task.cancel()


@contextlib.asynccontextmanager
async def pair(link_side: Direction, hub: LinkHub | None = None
               ) -> AsyncIterator[tuple[Link, Far]]:
    """A Link on one side of a loopback WebSocket (the given direction), a raw one on the other."""
    hub = hub or QuietHub()
    timing = Timing(INTERVAL, TIMEOUT)
    made: asyncio.Future[Link | Far] = asyncio.get_running_loop().create_future()
    done = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False, heartbeat=None)
        await ws.prepare(request)
        if link_side is Direction.INBOUND:
            made.set_result(Link(hub, ws, b"\1" * 32, Direction.INBOUND, "far",
                                 b"\2" * 32, timing))
        else:
            made.set_result(Far(ws))
        await done.wait()
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(
                f"http://127.0.0.1:{port}/", autoping=False, heartbeat=None) as ws:
            if link_side is Direction.INBOUND:
                here = await made
                assert isinstance(here, Link)
                yield here, Far(ws)
            else:
                far = await made
                assert isinstance(far, Far)
                yield Link(hub, ws, b"\1" * 32, Direction.OUTBOUND, "far", b"\2" * 32,
                           timing), far
    finally:
        done.set()
        await runner.cleanup()


async def run_for(link: Link, far: Far, seconds: float, far_pings: float | None
                  ) -> LinkEnd | None:
    """Run both ends for ``seconds``; how the link ended, or None if it is still up."""
    listening = asyncio.create_task(far.listen(far_pings))
    running = asyncio.create_task(link.run())
    try:
        await asyncio.wait({running}, timeout=seconds)
        return running.result() if running.done() else None
    finally:
        link.close_soon(1001, "test over")
        await asyncio.wait({running, listening}, timeout=3)
        listening.cancel()


async def test_the_listening_side_never_pings_and_stays_up_while_the_dialer_pings() -> None:
    async with pair(Direction.INBOUND) as (link, far):
        assert await run_for(link, far, 3 * TIMEOUT, far_pings=INTERVAL) is None
        assert far.pings == 0


async def test_the_dialing_side_pings_a_quiet_peer_once_an_interval_and_stays_up() -> None:
    async with pair(Direction.OUTBOUND) as (link, far):
        assert await run_for(link, far, 3 * TIMEOUT, far_pings=None) is None
        intervals = 3 * TIMEOUT / INTERVAL
        assert intervals * 0.5 <= far.pings <= intervals + 1


@pytest.mark.parametrize("side", [Direction.INBOUND, Direction.OUTBOUND])
async def test_either_side_takes_a_silent_peer_for_dead_after_the_timeout(
        side: Direction) -> None:
    async with pair(side) as (link, far):
        far.answer = False
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = await run_for(link, far, 4 * TIMEOUT, far_pings=None)
        assert end is not None and "nothing heard" in end.reason
        assert TIMEOUT <= loop.time() - start < 2 * TIMEOUT  # at the timeout, not a check later


class SlowHub(QuietHub):
    """A hub whose node is busy until ``free`` is set: notes what arrived and what it handled."""

    def __init__(self) -> None:
        self.arrivals: list[bytes] = []
        self.handled: list[bytes] = []
        self.free = asyncio.Event()

    def arrived(self, link: Link, frame: bytes) -> bool:
        """Noted as soon as it is read; kept unless it starts with ``LIVE``."""
        self.arrivals.append(frame)
        return not frame.startswith(LIVE)

    async def frame_in(self, link: Link, frame: bytes) -> None:
        """Handled once the node is free."""
        await self.free.wait()
        self.handled.append(frame)


async def test_frames_are_read_while_the_node_is_busy_and_all_handled_before_a_close() -> None:
    hub = SlowHub()
    frames = [bytes([i]) * 1000 for i in range(3)]
    async with pair(Direction.OUTBOUND, hub) as (link, far):
        running = asyncio.create_task(link.run())
        for frame in frames:
            await far.ws.send_bytes(frame)
        async with asyncio.timeout(5):
            while len(hub.arrivals) < len(frames):
                await asyncio.sleep(0.01)
        assert hub.handled == []  # all read (and so kept) while the node handled none
        await far.ws.close()
        await asyncio.sleep(0.1)
        assert not running.done()  # the close waits for the frames read before it
        hub.free.set()
        async with asyncio.timeout(5):
            end = await running
    assert hub.handled == frames
    assert end.reason == "closed by peer"


async def test_no_frame_is_read_past_one_the_inbox_did_not_keep_until_it_is_handled() -> None:
    """A relay reads a stalled node's live pushes one at a time (its memory stays bounded)."""
    hub = SlowHub()
    frames = [LIVE + bytes([i]) * 1000 for i in range(3)]
    async with pair(Direction.OUTBOUND, hub) as (link, far):
        running = asyncio.create_task(link.run())
        for frame in frames:
            await far.ws.send_bytes(frame)
        await asyncio.sleep(0.2)
        assert hub.arrivals == frames[:1]  # the rest wait in the socket
        hub.free.set()
        async with asyncio.timeout(5):
            while len(hub.handled) < len(frames):
                await asyncio.sleep(0.01)
        await far.ws.close()
        async with asyncio.timeout(5):
            await running
    assert hub.handled == frames
