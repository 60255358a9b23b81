"""The sans-IO sync node: one device's sessions, relaying, and its reaction to membership news.

Events go in (a link came up or went down, a frame arrived, the CLI committed records, a
link's send queue filled or drained, time passed); actions come out (send these frames
on that link, close that link, trust changed, this device was cut off, a link finished
its initial exchange). The node never reads a clock, starts a thread or touches a
socket: its caller passes ``now`` (monotonic seconds), runs it on the one thread that
owns the store, and carries the actions out. One link is one authenticated WebSocket
session, named by an ID the caller chooses.

Relaying: what a session stores is offered to every other link. A link whose send queue
is full (a slow peer behind this relay) gets only the records' IDs queued here; once it
drains, they are read again from the store and pushed a slice at a time, so a relay
holds a few MiB for a slow peer, not every attachment passing through.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from wifisync.errors import ProtocolError
from wifisync.model.membership import Member
from wifisync.model.records import Kind, Record
from wifisync.sync.session import SessionOutput, SessionStats, SyncSession

log = logging.getLogger("wifisync.daemon")

LOCAL_RECORDS = 500  # this device's records pushed per local-commit event: at most these many
LOCAL_BYTES = 1024 * 1024  # and at most this much of them
DRAINED_BYTES = 1024 * 1024  # queued frames at or below which a link counts as drained
BACKLOG_BYTES = 2 * 1024 * 1024  # queued frames above which a link counts as congested
BACKLOG_SLICE_BYTES = 1024 * 1024  # held-back records pushed at a time: this many bytes
BACKLOG_SLICE_RECORDS = 500  # or this many records


class CloseCode(enum.IntEnum):
    """Why a link closes, as WebSocket close codes; the 4xxx ones are wifisync's own."""

    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED = 1003
    TOO_BIG = 1009
    DUPLICATE = 4000  # the other connection between the same two devices survives
    TIMEOUT = 4001  # nothing heard for peer_timeout seconds
    NOT_MEMBER = 4003  # the peer is no current member (revoked): do not come back


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send these frames on that link, in order, after everything sent before."""

    link: int
    frames: list[bytes]


@dataclass(frozen=True, slots=True)
class Close:
    """Close that link with a code and a reason (it sends nothing more)."""

    link: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class TrustChanged:
    """The current members changed: trust these for new handshakes (``gone``: no longer)."""

    members: dict[bytes, Member]
    gone: frozenset[bytes]


@dataclass(frozen=True, slots=True)
class CutOff:
    """This device is no longer a current member: stop dialing and serving peers."""

    members: dict[bytes, Member]  # the current members, this device not among them
    revoked: bool  # it was revoked (else the store does not name it at all)


@dataclass(frozen=True, slots=True)
class Synced:
    """That link finished its initial exchange."""

    link: int
    applied: int
    sent: int


@dataclass(frozen=True, slots=True)
class LiveApplied:
    """That link's peer pushed records this device stored, after the initial exchange."""

    link: int
    records: int


@dataclass(frozen=True, slots=True)
class Behind:
    """About how many records that link's peer still has to send (None: not known yet)."""

    link: int
    records: int | None


@dataclass(frozen=True, slots=True)
class Deletes:
    """An author's item deletions this device just stored (for the mass-delete log line)."""

    author: bytes
    items: int


Action = Send | Close | TrustChanged | CutOff | Synced | LiveApplied | Behind | Deletes


class NodeStore(Protocol):
    """What the node reads of the store and asks of the vault (on the node's thread)."""

    def local_after(self, seq: int, limit: int, max_bytes: int) -> list[Record]:
        """This device's own records after ``seq``, oldest first, within the limits."""

    def get_record(self, record_id: bytes) -> Record | None:
        """One record by ID (held-back records are read again when their link drains)."""

    def current_members(self) -> dict[bytes, Member]:
        """The current members as the store says now."""

    def revoked(self, device: bytes) -> bool:
        """Whether the store names ``device`` as a revoked member."""

    def acknowledge_revocations(self) -> bool:
        """Write what revocations learned meanwhile call for; whether anything was written."""

    def release_memory(self) -> None:
        """Drop caches a finished initial exchange left behind."""


SessionFactory = Callable[[bytes, float], SyncSession]


class LocalPush(NamedTuple):
    """What one local-commit event pushed."""

    records: int  # this device's records offered to the links
    more: bool  # the slice was full: more may be committed (ask again once links drained)


@dataclass(slots=True)
class _Link:
    """The node's side of one link: its session and what waits for its queue to drain."""

    peer: bytes
    session: SyncSession
    closed: bool = False
    congested: bool = False
    behind: int | None = None
    backlog: deque[tuple[bytes, int]] = field(default_factory=deque)  # (record ID, size)


class SyncNode:
    """One device's sync sessions; feed it events, carry out :meth:`take_actions`."""

    def __init__(self, self_id: bytes, store: NodeStore, new_session: SessionFactory,
                 local_seq: int) -> None:
        self.self_id = self_id
        self._store = store
        self._new_session = new_session
        self._local_seq = local_seq  # this device's records up to here were pushed
        self._links: dict[int, _Link] = {}
        self._actions: list[Action] = []
        self.members = store.current_members()
        self.cut_off = self_id not in self.members

    # --- what the caller reads -------------------------------------------------------------

    @property
    def local_seq(self) -> int:
        """This device's records up to this seq were pushed."""
        return self._local_seq

    def take_actions(self) -> list[Action]:
        """The actions the events so far call for, in order; the node forgets them."""
        actions, self._actions = self._actions, []
        return actions

    def next_deadline(self) -> float | None:
        """When :meth:`tick` wants to run next (None: no timer)."""
        deadlines = [t for state in self._links.values() if not state.closed
                     and (t := state.session.next_timer()) is not None]
        return min(deadlines, default=None)

    def uncommitted(self, link: int) -> int:
        """Batches that link's session received and has not stored (0: closed or unknown)."""
        state = self._links.get(link)
        return 0 if state is None or state.closed else state.session.uncommitted

    def links(self) -> list[int]:
        """The links the node knows, oldest first."""
        return list(self._links)

    # --- events ----------------------------------------------------------------------------

    def link_up(self, link: int, peer: bytes, now: float) -> None:
        """A link to ``peer`` is authenticated: start its session (our HELLO goes out).

        A peer that stopped being a member while its handshake ran is closed at once.
        """
        state = _Link(peer, self._new_session(peer, now))
        self._links[link] = state
        if peer not in self.members:
            self._close(link, state, CloseCode.NOT_MEMBER, "not a member")
            return
        self._guarded(link, state, self._start, link, state, now)

    def link_down(self, link: int, _now: float) -> SessionStats | None:
        """The link ended; returns its session's counters (None: unknown link)."""
        state = self._links.pop(link, None)
        return None if state is None else state.session.stats

    def frame_in(self, link: int, frame: bytes, now: float) -> None:
        """A frame arrived on ``link``; a protocol violation closes the link."""
        state = self._links.get(link)
        if state is not None and not state.closed:
            self._guarded(link, state, self._received, link, state, frame, now)

    def local_commit(self, now: float) -> LocalPush:
        """The CLI committed records: push the next slice of ours.

        The caller repeats while the slice was full (``more``), letting the links drain
        between; a slice the bounds did not cut was everything committed so far.
        """
        records = self._store.local_after(self._local_seq, LOCAL_RECORDS, LOCAL_BYTES)
        if not records:
            return LocalPush(0, False)
        self._local_seq = records[-1].header.seq
        for link, state in list(self._links.items()):
            self._offer(link, state, records, now)
        if any(r.header.kind == Kind.MEMBER for r in records):
            self._membership_news(now)
        full = len(records) >= LOCAL_RECORDS or sum(len(r.encoded) for r in records) >= LOCAL_BYTES
        return LocalPush(len(records), full)

    def link_congested(self, link: int, _now: float) -> None:
        """More than ``BACKLOG_BYTES`` wait to be sent on ``link``: hold relayed records back."""
        state = self._links.get(link)
        if state is not None:
            state.congested = True

    def link_drained(self, link: int, now: float) -> None:
        """At most ``DRAINED_BYTES`` wait on ``link``: push held-back records again."""
        state = self._links.get(link)
        if state is None:
            return
        state.congested = False
        pushed = 0
        while state.backlog and not state.closed and pushed <= DRAINED_BYTES:
            ids: list[bytes] = []
            size = 0
            while state.backlog and size < BACKLOG_SLICE_BYTES \
                    and len(ids) < BACKLOG_SLICE_RECORDS:
                rid, n = state.backlog.popleft()
                ids.append(rid)
                size += n
            pushed += size  # at least this much is queued again: the link drains once more
            records = [r for rid in ids if (r := self._store.get_record(rid)) is not None]
            self._guarded(link, state, self._push, link, state, records)

    def tick(self, now: float) -> None:
        """Time passed: fire the timers that are due (a stalled initial exchange closes)."""
        for link, state in list(self._links.items()):
            deadline = state.session.next_timer()
            if not state.closed and deadline is not None and deadline <= now:
                self._guarded(link, state, self._fire, link, state, now)

    # --- internals -------------------------------------------------------------------------

    def _guarded(self, link: int, state: _Link, step: Callable[..., None], *args: object
                 ) -> None:
        """Run one step of a link; what goes wrong in it closes that link only."""
        try:
            step(*args)
        except ProtocolError as exc:
            self._close(link, state, CloseCode.PROTOCOL_ERROR, f"protocol error: {exc}")
        except Exception as exc:
            log.exception("session with %s failed", state.peer.hex()[:16])
            self._close(link, state, CloseCode.PROTOCOL_ERROR, f"internal error: {exc}")

    def _start(self, link: int, state: _Link, now: float) -> None:
        self._send(link, state.session.start(now))

    def _push(self, link: int, state: _Link, records: Sequence[Record]) -> None:
        self._send(link, state.session.push(records))

    def _fire(self, link: int, state: _Link, now: float) -> None:
        self._send(link, state.session.handle_timer(now))

    def _send(self, link: int, frames: list[bytes]) -> None:
        if frames:
            self._actions.append(Send(link, frames))

    def _close(self, link: int, state: _Link, code: int, reason: str) -> None:
        if not state.closed:
            state.closed = True
            state.backlog.clear()
            self._actions.append(Close(link, code, reason))

    def _received(self, link: int, state: _Link, frame: bytes, now: float) -> None:
        """Feed one frame to its session, then relay and react to what it stored."""
        session = state.session
        out = session.receive(frame, now)
        self._send(link, list(out.send))
        self._relay(link, out.applied, now)
        for device in out.revoked:
            self._close_peer(device, "revoked")
        if out.membership_changed or out.revoked or out.finished_initial:
            self._membership_news(now)  # also acknowledges revocations learned meanwhile
        if out.finished_initial:
            self._store.release_memory()
        self._note_progress(link, state, out)
        self._note_deletes(out.applied)

    def _note_progress(self, link: int, state: _Link, out: SessionOutput) -> None:
        """Tell the caller how far the initial exchange is, and when it finished."""
        session = state.session
        behind = 0 if session.in_sync else session.records_behind
        if behind != state.behind:
            state.behind = behind
            self._actions.append(Behind(link, behind))
        if out.finished_initial:
            self._actions.append(Synced(link, session.stats.records_applied,
                                        session.stats.records_sent))
        elif out.applied and session.in_sync:
            self._actions.append(LiveApplied(link, len(out.applied)))

    def _relay(self, source: int, records: list[Record], now: float) -> None:
        """Offer what one link stored to every other link."""
        if records:
            for link, state in list(self._links.items()):
                if link != source:
                    self._offer(link, state, records, now)

    def _offer(self, link: int, state: _Link, records: Sequence[Record], now: float) -> None:
        """Push new records to one link, or hold their IDs back while its queue is full."""
        if state.closed or not records:
            return
        if state.backlog or state.congested:
            state.backlog.extend((r.id, len(r.encoded)) for r in records)
            return
        self._guarded(link, state, self._push, link, state, records)

    def _close_peer(self, device: bytes, reason: str) -> None:
        """Close every link to ``device`` (it is no member any more)."""
        for link, state in list(self._links.items()):
            if state.peer == device:
                self._close(link, state, CloseCode.NOT_MEMBER, reason)

    def _membership_news(self, now: float) -> None:
        """Membership may have changed: acknowledge revocations, then take the new members."""
        if self._store.acknowledge_revocations():
            self.local_commit(now)  # pushes the acknowledgement and comes back here once
            return
        members = self._store.current_members()
        if self.self_id not in members:
            self.members = members
            if not self.cut_off:
                self.cut_off = True
                self._actions.append(CutOff(members, self._store.revoked(self.self_id)))
            return
        gone = frozenset(self.members) - frozenset(members)
        self.members = members
        self._actions.append(TrustChanged(members, gone))
        for link, state in list(self._links.items()):
            if state.peer not in members:
                self._close(link, state, CloseCode.NOT_MEMBER, "not a member")

    def _note_deletes(self, applied: Sequence[Record]) -> None:
        """Count item deletions per author, for the caller's mass-delete watch."""
        by_author: dict[bytes, int] = {}
        for r in applied:
            if r.header.deleted and r.header.kind == Kind.ITEM:
                by_author[r.header.author] = by_author.get(r.header.author, 0) + 1
        self._actions.extend(Deletes(author, n) for author, n in by_author.items())
