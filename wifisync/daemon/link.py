"""One authenticated WebSocket to a member device, moving the frames of its sync session.

The session itself (``wifisync.sync``) is sans-IO; a link feeds it received frames on
the store worker, sends what it returns in order, fires its timers, answers pings and
takes the peer for dead when nothing arrives for ``peer_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from aiohttp import web

from wifisync.errors import ProtocolError
from wifisync.model.deviceid import short_device_id

if TYPE_CHECKING:
    from wifisync.sync import SyncSession

log = logging.getLogger("wifisync.daemon")

WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse
LIVE_LOG_DELAY = 1.0  # records pushed live are logged as one line per burst
DRAINED_BYTES = 1024 * 1024  # queued frames below which a local push may go on
BACKLOG_BYTES = 2 * 1024 * 1024  # queued frames above which relayed records wait as IDs
BACKLOG_SLICE_BYTES = 1024 * 1024  # held-back records pushed at a time: this many bytes
PUSH_RECORDS = 500  # or this many records


class CloseCode(enum.IntEnum):
    """WebSocket close codes a link uses; the 4xxx ones are wifisync's own."""

    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED = 1003
    TOO_BIG = 1009
    DUPLICATE = 4000  # the other connection between the same two devices survives
    TIMEOUT = 4001  # nothing heard for peer_timeout seconds
    NOT_MEMBER = 4003  # the peer is no current member (revoked): do not come back


class Direction(enum.Enum):
    """Who dialed."""

    INBOUND = "in"
    OUTBOUND = "out"


class Hub(Protocol):
    """What a link needs from the daemon that owns it."""

    worker: Any
    store: Any
    ping_interval: float
    peer_timeout: float

    def new_session(self, peer_id: bytes) -> SyncSession:
        """A fresh sync session with ``peer_id`` (called on the worker)."""

    def after_receive(self, link: Link, out: Any) -> None:
        """Relay what a session applied and react to membership news (called on the worker)."""

    def link_synced(self, link: Link) -> None:
        """The link finished its initial exchange or applied live records (on the loop)."""


@dataclass(frozen=True, slots=True)
class LinkEnd:
    """Why a link ended, as the dialer needs it."""

    code: int
    reason: str


class Link:
    """A live session with one peer device over one WebSocket."""

    def __init__(self, hub: Hub, ws: WebSocket, peer_id: bytes, direction: Direction,
                 address: str, self_id: bytes) -> None:
        self.hub = hub
        self.ws = ws
        self.peer_id = peer_id
        self.direction = direction
        self.address = address
        self.dialer = self_id if direction is Direction.OUTBOUND else peer_id
        self.session: SyncSession | None = None
        self.connected_at = time.time()
        self.last_seen = time.time()
        self.in_sync = False
        self.synced_at: float | None = None  # wall clock of the last exchange that completed
        self.clock_skew: float | None = None  # the peer's clock minus ours, at the handshake
        self._loop = asyncio.get_running_loop()
        self._live_in = 0
        self._live_log: asyncio.TimerHandle | None = None
        self._outbox: asyncio.Queue[list[bytes] | None] = asyncio.Queue()
        self._last_rx = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._end: LinkEnd | None = None
        self._busy = asyncio.Lock()  # held while a frame is being applied
        self._queued_bytes = 0  # frames handed to the writer and not yet sent
        self._drained = asyncio.Event()
        self._drained.set()
        # IDs of records held back while too much waited to be sent (a slow peer behind a
        # relay): read again from the store and pushed once the outbox drained.
        self._backlog: deque[tuple[bytes, int]] = deque()  # (record ID, size)
        self._refill: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        """Short device ID for log lines."""
        return short_device_id(self.peer_id)

    # --- called on the worker thread ------------------------------------------------------

    def send_threadsafe(self, frames: list[bytes]) -> None:
        """Queue frames from the worker; the loop sends them in the order they were made."""
        if frames:
            self._loop.call_soon_threadsafe(self._enqueue, frames)

    def _start(self) -> None:
        self.session = self.hub.new_session(self.peer_id)
        self.send_threadsafe(self.session.start(time.monotonic()))
        self._timer_threadsafe()

    def _receive(self, frame: bytes) -> None:
        assert self.session is not None
        out = self.session.receive(frame, time.monotonic())
        self.send_threadsafe(list(out.send))
        self.hub.after_receive(self, out)
        if out.applied and not out.finished_initial and self.session.in_sync:
            self._loop.call_soon_threadsafe(self._count_live, len(out.applied))
        if out.finished_initial:
            self._loop.call_soon_threadsafe(self._synced)
        self._timer_threadsafe()

    def _fire_timer(self) -> None:
        if self.session is None:
            return
        self.send_threadsafe(self.session.handle_timer(time.monotonic()))
        self._timer_threadsafe()

    def push_threadsafe(self, records: list[Any]) -> None:
        """Offer new records to this peer (called on the worker).

        While more than ``BACKLOG_BYTES`` wait to be sent, only the records' IDs are kept:
        a relay then holds a few MiB for a slow peer, not every attachment passing through.
        """
        if self.session is not None and records and self._end is None:
            if self._backlog or self._queued_bytes > BACKLOG_BYTES:
                self._backlog.extend((r.id, len(r.encoded)) for r in records)
                self._loop.call_soon_threadsafe(self._maybe_refill)
                return
            self.send_threadsafe(self.session.push(records))
            self._timer_threadsafe()

    def _push_backlog(self, ids: list[bytes]) -> None:
        """On the worker: push held-back records, read again from the store."""
        records = [r for rid in ids if (r := self.hub.store.get_record(rid)) is not None]
        if self.session is not None and records and self._end is None:
            self.send_threadsafe(self.session.push(records))
            self._timer_threadsafe()

    def _maybe_refill(self) -> None:
        """On the loop: once the outbox drained, push the next slice of the backlog."""
        if (self._backlog and self._refill is None and self._end is None
                and self._queued_bytes <= DRAINED_BYTES):
            ids: list[bytes] = []
            size = 0
            while self._backlog and size < BACKLOG_SLICE_BYTES and len(ids) < PUSH_RECORDS:
                rid, n = self._backlog.popleft()
                ids.append(rid)
                size += n
            self._refill = self._loop.create_task(self._guarded(self._push_backlog, ids))
            self._refill.add_done_callback(self._refilled)

    def _refilled(self, _task: asyncio.Task[None]) -> None:
        self._refill = None
        self._maybe_refill()

    def _timer_threadsafe(self) -> None:
        assert self.session is not None
        deadline = self.session.next_timer()
        self._loop.call_soon_threadsafe(self._arm_timer, deadline)

    # --- event loop -----------------------------------------------------------------------

    def _enqueue(self, frames: list[bytes]) -> None:
        self._queued_bytes += sum(len(f) for f in frames)
        if self._queued_bytes > DRAINED_BYTES:
            self._drained.clear()
        self._outbox.put_nowait(frames)

    async def drained(self) -> None:
        """Return once at most ``DRAINED_BYTES`` wait to be sent (or the link ended)."""
        await self._drained.wait()

    def _arm_timer(self, deadline: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is None or self._end is not None:
            return
        delay = max(0.0, deadline - time.monotonic())
        self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._loop.create_task(self._guarded(self._fire_timer))

    async def _guarded(self, fn: Callable[..., None], *args: object) -> None:
        async with self._busy:
            if self._end is not None:
                return
            try:
                await self.hub.worker.run(fn, *args)
            except ProtocolError as exc:
                self.close_soon(CloseCode.PROTOCOL_ERROR, f"protocol error: {exc}")
            except Exception as exc:
                log.exception("session with %s failed", self.name)
                self.close_soon(CloseCode.PROTOCOL_ERROR, f"internal error: {exc}")

    def _synced(self) -> None:
        if not self.in_sync:
            self.in_sync = True
            self.synced_at = time.time()
            stats = self.session.stats if self.session is not None else None
            log.info("in sync with %s: %d records in, %d out, %.2f s", self.name,
                     stats.records_applied if stats else 0, stats.records_sent if stats else 0,
                     self.synced_at - self.connected_at)
            self.hub.link_synced(self)

    def _count_live(self, applied: int) -> None:
        self._live_in += applied
        if self._live_log is None:
            self._live_log = self._loop.call_later(LIVE_LOG_DELAY, self._log_live)

    def _log_live(self) -> None:
        self._live_log = None
        self.synced_at = time.time()
        log.info("received %d record(s) from %s", self._live_in, self.name)
        self._live_in = 0
        self.hub.link_synced(self)

    @property
    def records_behind(self) -> int | None:
        """Records the peer still has to send us, as far as its HELLO told (None before it)."""
        if self.in_sync:
            return 0
        return None if self.session is None else self.session.records_behind

    def close_soon(self, code: int, reason: str) -> None:
        """End the link from anywhere on the loop; the run loop does the rest."""
        if self._end is None:
            self._end = LinkEnd(code, reason)
            self._outbox.put_nowait(None)
            self._drained.set()

    async def _writer(self) -> None:
        while True:
            frames = await self._outbox.get()
            if frames is None:
                return
            for frame in frames:
                await self.ws.send_bytes(frame)
                self._queued_bytes -= len(frame)
                if self._queued_bytes <= DRAINED_BYTES:
                    self._drained.set()
                    self._maybe_refill()

    async def _watchdog(self) -> None:
        interval = self.hub.ping_interval
        while True:
            await asyncio.sleep(min(interval, self.hub.peer_timeout / 2))
            silent = self._loop.time() - self._last_rx
            if silent > self.hub.peer_timeout:
                self.close_soon(CloseCode.TIMEOUT, f"nothing heard for {silent:.1f} s")
                return
            if silent >= interval:
                await self.ws.ping()

    async def run(self) -> LinkEnd:
        """Drive the session until either side ends it; returns why it ended."""
        writer = self._loop.create_task(self._writer())
        watchdog = self._loop.create_task(self._watchdog())
        reader = self._loop.create_task(self._read())
        try:
            await self._guarded(self._start)
            await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.cancel()
            watchdog.cancel()
            self._drained.set()  # nobody waits on a link that is gone
            if self._refill is not None:
                self._refill.cancel()
            if self._end is None:
                self._end = LinkEnd(int(self.ws.close_code or CloseCode.GOING_AWAY),
                                    "closed by peer")
            self._outbox.put_nowait(None)
            try:
                await asyncio.wait_for(writer, 1.0)
            except (TimeoutError, Exception):
                writer.cancel()
            if self._timer is not None:
                self._timer.cancel()
            if self._live_log is not None:
                self._live_log.cancel()
                self._log_live()
            if not self.ws.closed:
                with contextlib.suppress(TimeoutError, Exception):
                    await asyncio.wait_for(
                        self.ws.close(code=self._end.code, message=self._end.reason[:120].encode()),
                        1.0)
        return self._end

    async def _read(self) -> None:
        while self._end is None:
            msg = await self.ws.receive()
            self._last_rx = self._loop.time()
            self.last_seen = time.time()
            if msg.type is aiohttp.WSMsgType.BINARY:
                await self._guarded(self._receive, msg.data)
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
                code = int(self.ws.close_code or CloseCode.GOING_AWAY)
                extra = msg.extra if isinstance(msg.extra, str) and msg.extra else ""
                self._end = LinkEnd(code, extra or "closed by peer")
                self._outbox.put_nowait(None)
                return
