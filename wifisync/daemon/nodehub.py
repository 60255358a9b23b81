"""The one hand-over between the event loop and the sync node, which lives on the store thread.

Each event goes to the store thread as one call: the node handles it, and the actions it
asks for come back with the result in the same hop; the hub carries them out on the
loop (frames to links, closes, trust, news). So a received frame crosses the thread
boundary once each way, whatever it makes the node send, relay or close. The node's
timers are one loop timer, re-armed after every call for the node's next deadline.

A live change is small: a PUSH of a few records on a link in sync, or a local commit of
a few records. When the store thread is idle the loop handles such an event itself (a
few hundred microseconds, each signature still checked before anything is stored)
instead of waking the thread and being woken back, which on a busy machine cost more
than the work. Everything else, and anything while the thread is busy, goes over.

Each received BATCH is kept in the inbox (``daemon/inbox.py``) as it arrives; the hub
learns after each frame how many batches the link's session still holds uncommitted,
and lets the inbox drop what the store holds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from wifisync.daemon.inbox import Inbox, is_batch
from wifisync.daemon.storethread import StoreThread
from wifisync.sync.messages import MessageType
from wifisync.sync.node import (
    Action,
    Behind,
    Close,
    CloseCode,
    LiveApplied,
    LocalPush,
    Send,
    Synced,
    SyncNode,
)
from wifisync.sync.session import SessionStats

if TYPE_CHECKING:
    from wifisync.daemon.link import Link

log = logging.getLogger("wifisync.daemon")

T = TypeVar("T")

INLINE_PUSH_BYTES = 4 * 1024  # a live PUSH frame up to this size may be handled on the loop
INLINE_LOCAL_RECORDS = 8  # and a local commit of up to this many records
_PUSH = int(MessageType.PUSH)


@dataclass(slots=True)
class _Unstored:
    """A link's batches the inbox keeps and the store does not hold yet (inbox numbers)."""

    waiting: deque[int] = field(default_factory=deque)  # arrived, not handled yet
    held: deque[int] = field(default_factory=deque)  # handled, kept for the session's next
    # commit (always the newest batches it handled)

    def oldest(self) -> int | None:
        """The number of the oldest batch not stored (None: every one is)."""
        return self.held[0] if self.held else self.waiting[0] if self.waiting else None


class NodeHub:
    """Feeds the node events on the store thread and carries out its actions on the loop."""

    def __init__(self, node: SyncNode, thread: StoreThread, local_tip: Callable[[], int],
                 on_news: Callable[[Action], None],
                 on_synced: Callable[[Link], None], inbox: Inbox | None = None) -> None:
        self.node = node
        self.thread = thread
        self._local_tip = local_tip  # the seq of this device's latest record (on the store)
        self.links: dict[int, Link] = {}  # every link the node knows, by ID
        self._on_news = on_news  # trust changed, cut off, deletes: the daemon's business
        self._on_synced = on_synced
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._posted: set[asyncio.Task[None]] = set()  # events nobody waits for: owned here
        self._closed = False
        self._inbox = inbox
        self._unstored: dict[int, _Unstored] = {}  # by link ID

    # --- the hand-over --------------------------------------------------------------------

    async def call(self, event: Callable[..., T], *args: object) -> T:
        """Run ``event(*args, now)`` on the store thread, then carry out what it asked for."""
        outcome: tuple[T, list[Action], float | None] = await self.thread.run(
            self._handle, event, *args)
        return self._apply(outcome)

    def _here(self, event: Callable[..., T], *args: object) -> T:
        """Run a small event on the loop itself; only while :meth:`StoreThread.idle`."""
        return self._apply(self._handle(event, *args))

    def _apply(self, outcome: tuple[T, list[Action], float | None]) -> T:
        result, actions, deadline = outcome
        self._carry_out(actions)
        self._arm(deadline)
        return result

    def _handle(self, event: Callable[..., T], *args: object
                ) -> tuple[T, list[Action], float | None]:
        """On the store thread: one event, the actions it produced, the next deadline."""
        result = event(*args, time.monotonic())
        return result, self.node.take_actions(), self.node.next_deadline()

    def post(self, event: Callable[..., None], *args: object) -> None:
        """Hand over an event nobody waits for (still in order with every other event)."""
        if self._closed:
            return  # stopping: the store thread takes no new work
        task = asyncio.get_running_loop().create_task(self._posted_call(event, *args))
        self._posted.add(task)
        task.add_done_callback(self._posted.discard)

    async def _posted_call(self, event: Callable[..., None], *args: object) -> None:
        try:
            await self.call(event, *args)
        except Exception:
            log.exception("the sync node failed")

    def _carry_out(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Send(link, frames):
                    if (target := self.links.get(link)) is not None:
                        target.enqueue(frames)
                case Close(link, code, reason):
                    if (target := self.links.get(link)) is not None:
                        target.close_soon(code, reason)
                case Synced(link, applied, sent):
                    if (target := self.links.get(link)) is not None:
                        target.synced(applied, sent)
                case LiveApplied(link, records):
                    if (target := self.links.get(link)) is not None:
                        target.count_live(records)
                case Behind(link, records):
                    if (target := self.links.get(link)) is not None:
                        target.records_behind = records
                case _:
                    self._on_news(action)

    def _arm(self, deadline: float | None) -> None:
        """One loop timer for the node's earliest deadline."""
        if deadline == self._deadline and (deadline is None or self._timer is not None):
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = deadline
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_later(
                max(0.0, deadline - time.monotonic()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._deadline = None
        self.post(self.node.tick)

    # --- what links ask (LinkHub) ---------------------------------------------------------

    async def link_up(self, link: Link) -> None:
        """The link is attached: its session starts (our HELLO goes out)."""
        self.links[link.id] = link
        await self._guarded(link, self.node.link_up, link.id, link.peer_id)

    def arrived(self, link: Link, frame: bytes) -> bool:
        """A frame was read: a batch goes to the inbox at once, before it is checked;
        whether the inbox kept it."""
        if self._inbox is None or not is_batch(frame):
            return False
        unstored = self._unstored.setdefault(link.id, _Unstored())
        unstored.waiting.append(self._inbox.append(frame))
        return self._inbox.keeping

    async def frame_in(self, link: Link, frame: bytes) -> None:
        """One received frame; returns once the node handled it."""
        if link.in_sync and len(frame) <= INLINE_PUSH_BYTES and _is_push(frame) \
                and self.thread.idle():
            try:
                self._here(self.node.frame_in, link.id, frame)
            except Exception as exc:
                _crashed(link, exc)
            await asyncio.sleep(0)  # frames already read wait their turn behind other tasks
            return
        batch = self._inbox is not None and is_batch(frame)
        try:
            held = await self.call(self._frame_in, link.id, frame)
        except Exception as exc:
            _crashed(link, exc)
            held = 0
        self._note_held(link.id, batch, held)

    def _frame_in(self, link: int, frame: bytes, now: float) -> int:
        """On the store thread: one frame to the node; the batches its session still holds."""
        self.node.frame_in(link, frame, now)
        return self.node.uncommitted(link)

    def _note_held(self, link: int, batch: bool, held: int) -> None:
        """A frame was handled and the link's session holds ``held`` batches uncommitted:
        the inbox may drop every batch older than those of every link."""
        unstored = self._unstored.get(link)
        if unstored is None or self._inbox is None:
            return
        if batch and unstored.waiting:
            unstored.held.append(unstored.waiting.popleft())
        while len(unstored.held) > held:
            unstored.held.popleft()
        self._release()

    def _release(self) -> None:
        if self._inbox is not None:
            self._inbox.release(min((n for u in self._unstored.values()
                                     if (n := u.oldest()) is not None),
                                    default=self._inbox.next))

    async def link_down(self, link: Link) -> SessionStats | None:
        """The link ended: the node forgets it."""
        try:
            return await self.call(self.node.link_down, link.id)
        finally:
            self.links.pop(link.id, None)
            if self._unstored.pop(link.id, None) is not None:
                self._release()  # what the session held is not stored: the peer sends it
                # again (a restart before the segment goes replays it)

    def congestion(self, link: Link, congested: bool) -> None:
        """The link's send queue filled or drained."""
        self.post(self.node.link_congested if congested else self.node.link_drained, link.id)

    def link_synced(self, link: Link) -> None:
        """A link finished an exchange: the daemon remembers when."""
        self._on_synced(link)

    async def _guarded(self, link: Link, event: Callable[..., None], *args: object) -> None:
        """A link's event; the node closes a link itself on a protocol error, this on a crash."""
        try:
            await self.call(event, *args)
        except Exception as exc:
            _crashed(link, exc)

    # --- the daemon's ---------------------------------------------------------------------

    async def local_commit(self) -> LocalPush:
        """Push the next slice of this device's new records (``more``: ask again)."""
        return await self.call(self.node.local_commit)

    def local_commit_here(self) -> LocalPush | None:
        """Push a usual commit (a few records) right here; None: the store thread must."""
        if self.thread.idle() and self._local_tip() - self.node.local_seq <= INLINE_LOCAL_RECORDS:
            return self._here(self.node.local_commit)
        return None

    async def close(self) -> None:
        """Stop the timer and wait for the events handed over (shutdown)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._posted:
            await asyncio.gather(*self._posted, return_exceptions=True)


def _is_push(frame: bytes) -> bool:
    """Whether a frame is a PUSH: a msgpack array (fixarray) whose first element is 7."""
    return len(frame) > 1 and frame[0] & 0xF0 == 0x90 and frame[1] == _PUSH


def _crashed(link: Link, exc: Exception) -> None:
    """The node crashed on a link's event (it closes links itself on protocol errors)."""
    log.exception("session with %s failed", link.name)
    link.close_soon(CloseCode.PROTOCOL_ERROR, f"internal error: {exc}")
