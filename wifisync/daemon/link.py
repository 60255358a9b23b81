"""One link: one authenticated WebSocket session with a member device, on the event loop.

Everything here runs on the event loop. A link reads frames as they arrive, gives each to
its hub at once (which keeps received batches in the inbox, ``daemon/inbox.py``) and then,
in order, to the sync node through the hub (the one hand-over to the store thread,
``daemon/nodehub.py``); frames read ahead wait for the node up to ``READ_AHEAD_BYTES``,
so a peer's frames reach the inbox while the node is busy storing earlier ones. It
sends the frames the node asks for in order, answers pings (the dialing side sends them), takes
the peer for dead when nothing arrives for ``peer_timeout`` seconds, and tells the node when
its send queue fills or drains. A quiet link wakes its process only for pings: a timer re-armed
by each arrival stands for the silence check.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from aiohttp import web

from wifisync.model.deviceid import short_device_id
from wifisync.sync.node import BACKLOG_BYTES, DRAINED_BYTES, CloseCode
from wifisync.sync.session import SessionStats

__all__ = ["CloseCode", "Direction", "Link", "LinkEnd", "LinkHub", "Timing"]

log = logging.getLogger("wifisync.daemon")

WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse
LIVE_LOG_DELAY = 1.0  # records pushed live are logged as one line per burst
READ_AHEAD_BYTES = 8 * 1024 * 1024  # frames read and not yet handled by the node, at most
# (an initial sync's sender has at most 8 batches unacknowledged, a few MiB); reading goes
# on past a frame only when the inbox kept it: past any other (live pushes, attachment
# chunks a relay passes on) it waits until the node handled it, as the socket's buffers
# bounded it before
_link_ids = itertools.count(1)


class Direction(enum.Enum):
    """Who dialed."""

    INBOUND = "in"
    OUTBOUND = "out"


@dataclass
class Timing:
    """How often a quiet link pings and when it takes its peer for dead (reloadable)."""

    ping_interval: float
    peer_timeout: float


class LinkHub(Protocol):
    """What a link asks of the daemon: the hand-over to the sync node, and news of syncs."""

    async def link_up(self, link: Link) -> None:
        """The link is attached: start its session."""

    def arrived(self, link: Link, frame: bytes) -> bool:
        """One frame was read (before the node handles it): keep it if it is a batch;
        whether it was kept (the link reads ahead only past kept frames)."""

    async def frame_in(self, link: Link, frame: bytes) -> None:
        """Hand one received frame to the node; returns once it was handled."""

    async def link_down(self, link: Link) -> SessionStats | None:
        """The link ended: the node forgets it; returns its session's counters."""

    def congestion(self, link: Link, congested: bool) -> None:
        """The link's send queue filled (True) or drained (False)."""

    def link_synced(self, link: Link) -> None:
        """The link finished an exchange or applied live records."""


@dataclass(frozen=True, slots=True)
class LinkEnd:
    """Why a link ended, as the dialer needs it."""

    code: int
    reason: str


class Link:
    """A live session with one peer device over one WebSocket."""

    def __init__(self, hub: LinkHub, ws: WebSocket, peer_id: bytes, direction: Direction,
                 address: str, self_id: bytes, timing: Timing) -> None:
        self.id = next(_link_ids)  # the node knows the link by this
        self.hub = hub
        self.ws = ws
        self.peer_id = peer_id
        self.direction = direction
        self.address = address
        self.timing = timing
        self.dialer = self_id if direction is Direction.OUTBOUND else peer_id
        self.connected_at = time.time()
        self.last_seen = time.time()
        self.in_sync = False
        self.records_behind: int | None = None  # as far as the peer's HELLO told (node says)
        self.stats: SessionStats | None = None  # the session's counters, once it ended
        self.synced_at: float | None = None  # wall clock of the last exchange that completed
        self.clock_skew: float | None = None  # the peer's clock minus ours, at the handshake
        self.peer_run = ""  # the peer daemon's run ID, at the handshake (empty: not said)
        self._loop = asyncio.get_running_loop()
        self._live_in = 0
        self._live_log: asyncio.TimerHandle | None = None
        self._outbox: asyncio.Queue[list[bytes] | None] = asyncio.Queue()
        self._last_rx = self._loop.time()
        self._silence: asyncio.TimerHandle | None = None  # fires after peer_timeout of silence
        self._end: LinkEnd | None = None
        self._queued_bytes = 0  # frames handed to the writer and not yet sent
        self._drained = asyncio.Event()
        self._drained.set()
        self._inbound: asyncio.Queue[bytes] = asyncio.Queue()  # read, not handled yet
        self._inbound_bytes = 0
        self._room = asyncio.Event()  # set while fewer than READ_AHEAD_BYTES wait
        self._room.set()

    def quiet_for(self) -> float:
        """Seconds since anything arrived on this link."""
        return self._loop.time() - self._last_rx

    @property
    def name(self) -> str:
        """Short device ID for log lines."""
        return short_device_id(self.peer_id)

    # --- what the node asked for (the hub calls these) ------------------------------------

    def enqueue(self, frames: list[bytes]) -> None:
        """Send these frames after everything queued before."""
        if self._end is not None:
            return
        before = self._queued_bytes
        self._queued_bytes += sum(len(f) for f in frames)
        if self._queued_bytes > DRAINED_BYTES:
            self._drained.clear()
        if before <= BACKLOG_BYTES < self._queued_bytes:
            self.hub.congestion(self, True)
        self._outbox.put_nowait(frames)

    def close_soon(self, code: int, reason: str) -> None:
        """End the link; the run loop does the rest."""
        if self._end is None:
            self._end = LinkEnd(code, reason)
            self._outbox.put_nowait(None)
            self._drained.set()

    def synced(self, applied: int, sent: int) -> None:
        """The initial exchange finished."""
        if not self.in_sync:
            self.in_sync = True
            self.records_behind = 0
            self.synced_at = time.time()
            log.info("in sync with %s: %d records in, %d out, %.2f s", self.name, applied, sent,
                     self.synced_at - self.connected_at)
            self.hub.link_synced(self)

    def count_live(self, applied: int) -> None:
        """The peer pushed records that were stored: one log line per burst."""
        self._live_in += applied
        if self._live_log is None:
            self._live_log = self._loop.call_later(LIVE_LOG_DELAY, self._log_live)

    def _log_live(self) -> None:
        self._live_log = None
        self.synced_at = time.time()
        log.info("received %d record(s) from %s", self._live_in, self.name)
        self._live_in = 0
        self.hub.link_synced(self)

    async def drained(self) -> None:
        """Return once at most ``DRAINED_BYTES`` wait to be sent (or the link ended)."""
        await self._drained.wait()

    # --- the run loop ---------------------------------------------------------------------

    async def run(self) -> LinkEnd:
        """Drive the session until either side ends it; returns why it ended."""
        writer = self._loop.create_task(self._writer(), name=f"link {self.id} writer")
        pinger = (self._loop.create_task(self._pinger(), name=f"link {self.id} pinger")
                  if self.direction is Direction.OUTBOUND else None)  # one side pings
        self._heard()
        reader: asyncio.Task[None] | None = None
        handler: asyncio.Task[None] | None = None
        try:
            await self.hub.link_up(self)
            handler = self._loop.create_task(self._handle(), name=f"link {self.id} handler")
            reader = self._loop.create_task(self._read(), name=f"link {self.id} reader")
            await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, handler):
                if task is not None:
                    task.cancel()
            if pinger is not None:
                pinger.cancel()
            if self._silence is not None:
                self._silence.cancel()
            await self._finish(writer)
        return self._end or LinkEnd(CloseCode.GOING_AWAY, "closed")

    async def _finish(self, writer: asyncio.Task[None]) -> None:
        """Let the writer send what is queued (a second at most), tell the node, close."""
        self._drained.set()  # nobody waits on a link that is gone
        if self._end is None:
            self._end = LinkEnd(int(self.ws.close_code or CloseCode.GOING_AWAY),
                                "closed by peer")
        self._outbox.put_nowait(None)
        try:
            await asyncio.wait_for(writer, 1.0)
        except (TimeoutError, Exception):
            writer.cancel()
        if self._live_log is not None:
            self._live_log.cancel()
            self._log_live()
        with contextlib.suppress(Exception):
            self.stats = await self.hub.link_down(self)
        if not self.ws.closed:
            with contextlib.suppress(TimeoutError, Exception):
                await asyncio.wait_for(
                    self.ws.close(code=self._end.code, message=self._end.reason[:120].encode()),
                    1.0)

    async def _writer(self) -> None:
        while True:
            frames = await self._outbox.get()
            if frames is None:
                return
            for frame in frames:
                await self.ws.send_bytes(frame)
                before = self._queued_bytes
                self._queued_bytes -= len(frame)
                if self._queued_bytes <= DRAINED_BYTES:
                    self._drained.set()
                    if before > DRAINED_BYTES:
                        self.hub.congestion(self, False)

    def _heard(self) -> None:
        """Something arrived: the peer is alive; its silence is timed from now."""
        self._last_rx = self._loop.time()
        if self._silence is not None:
            self._silence.cancel()
        self._silence = self._loop.call_at(self._last_rx + self.timing.peer_timeout,
                                           self._silent)

    def _silent(self) -> None:
        self._silence = None
        silent = self._loop.time() - self._last_rx
        self.close_soon(CloseCode.TIMEOUT, f"nothing heard for {silent:.1f} s")

    async def _pinger(self) -> None:
        """Ping the peer once it has been quiet for ``ping_interval`` (the dialing side)."""
        last_ping = -float("inf")
        while True:
            interval = self.timing.ping_interval
            now = self._loop.time()
            if now - max(self._last_rx, last_ping) >= interval:
                await self.ws.ping()
                last_ping = now
            await asyncio.sleep(max(0.0, max(self._last_rx, last_ping) + interval
                                    - self._loop.time()))

    async def _read(self) -> None:
        while self._end is None:
            msg = await self.ws.receive()
            self._heard()
            self.last_seen = time.time()
            if msg.type is aiohttp.WSMsgType.BINARY:
                kept = self.hub.arrived(self, msg.data)  # not kept: read no further ahead
                self._inbound_bytes += len(msg.data)
                self._inbound.put_nowait(msg.data)
                if self._inbound_bytes > (READ_AHEAD_BYTES if kept else 0):
                    self._room.clear()
                    await self._room.wait()
            elif msg.type is aiohttp.WSMsgType.PING:
                await self.ws.pong(msg.data)
            elif msg.type is aiohttp.WSMsgType.PONG:
                continue
            elif msg.type is aiohttp.WSMsgType.TEXT:
                self.close_soon(CloseCode.UNSUPPORTED, "text frame")
            elif msg.type is aiohttp.WSMsgType.ERROR:
                exc = self.ws.exception()
                if getattr(exc, "code", None) == CloseCode.TOO_BIG:
                    self.close_soon(CloseCode.TOO_BIG, f"frame too big: {exc}")
                else:
                    self.close_soon(CloseCode.PROTOCOL_ERROR, f"bad frame: {exc}")
            else:  # CLOSE, CLOSING, CLOSED
                await self._inbound.join()  # the frames before it are handled first
                code = int(self.ws.close_code or CloseCode.GOING_AWAY)
                extra = msg.extra if isinstance(msg.extra, str) and msg.extra else ""
                self._end = LinkEnd(code, extra or "closed by peer")
                self._outbox.put_nowait(None)
                return

    async def _handle(self) -> None:
        """Hand the frames read to the node, one at a time and in order."""
        while True:
            frame = await self._inbound.get()
            try:
                await self.hub.frame_in(self, frame)
            finally:
                self._inbound_bytes -= len(frame)
                if self._inbound_bytes <= READ_AHEAD_BYTES:
                    self._room.set()
                self._inbound.task_done()
