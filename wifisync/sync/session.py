"""One sync session with one peer, as a sans-IO state machine: frames in, frames out.

The exchange runs in rounds. Round 0 starts when both HELLOs are known, round k when both
SUMMARYs of round k are: equal fingerprints end the exchange (``in_sync``); otherwise each
side streams what the other lacks, as windowed batches the receiver applies atomically
and acknowledges with a CHECKPOINT, then says DONE; once every batch is acknowledged and
the peer's DONE is in, both send a SUMMARY. The receiver stores a few batches per
transaction, keeping the newest back while its signature checks run on other cores. A round
streams by ``seen`` vectors (DELTA) while the previous one stored new records on either
side; if a round stored nothing yet the fingerprints still differ, the next round
exchanges sorted record IDs (ID_LIST) and sends exactly what the other lacks. Both sides
take every decision from the two summaries (fingerprints and counts of records stored),
so they always agree on the next step.

Legal messages per phase (``_TRANSITIONS`` at the end is this table as code: a phase and a
message type name the one handler; anything else is a ProtocolError):

    AWAIT_SUMMARY : HELLO (round 0, once) or SUMMARY (round k); PUSH
    STREAMING     : BATCH, ID_LIST (ID_LIST rounds), CHECKPOINT, DONE; PUSH
    IN_SYNC       : PUSH

No sockets, no asyncio, no clock: time is an argument. One caller at a time per session.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wifisync.errors import IntegrityError, ProtocolError
from wifisync.model.codec import vector
from wifisync.model.records import RECORD_ID_BYTES, Kind, Record
from wifisync.sync.messages import (
    MAX_IDS_PER_LIST,
    PROTOCOL_VERSION,
    Batch,
    Checkpoint,
    Done,
    Hello,
    IdList,
    Message,
    Push,
    Summary,
    decode_message,
    encode_message,
)
from wifisync.sync.outbound import batches, records_missing
from wifisync.sync.replica import ApplyResult, PreparedBatch, Replica

log = logging.getLogger(__name__)

COMMIT_GROUP = 2  # received batches stored per store transaction at most (random-key
# indexes make SQLite write nearly every index page per commit: fewer, larger commits
# write less; at most 2 MiB of records per transaction)
LOOKAHEAD = 2  # newer batches kept back while a group is stored: their signature checks run
# on the other cores meanwhile, so neither the checks nor the store wait for each other.
# Decoded, a batch of 1024 small records takes about 1.7 MiB, the largest part of what a
# receiving daemon holds in a 100k sync besides its page cache: 2 + 2 hold 7 MiB (4 + 4
# held 14, 8 + 8 held 36), for the same sync time between two daemons (interleaved runs)
WINDOW = COMMIT_GROUP + LOOKAHEAD + 4  # stream items in flight before the sender waits
# What a crash loses is what the sender framed that the receiver has not made durable (a
# daemon keeps what it read in its inbox, daemon/inbox.py: then only what was still in
# flight), so both ends start small and grow with what the session made durable: a
# round's batches start at FIRST_BATCH_RECORDS records and double; the receiver's commit
# group (and its look-ahead) is a GROUP_SHARE-th of the records this session stored, at
# least FIRST_BATCH_RECORDS, at most COMMIT_GROUP batches; the sender keeps at most
# WINDOW_START_RECORDS plus twice that share unacknowledged, so it always sends enough
# for the receiver's next commit (2 x group <= window) and no more than about a quarter
# of what the session already stored, or two batches when that is more: the receiver
# keeps the newest batch back from each commit, checking it while it stores the older
# (without that, a 10k initial sync checked and stored strictly in turn: 20 % slower).
# Two batches at most WINDOW_START_RECORDS more than the session saw acknowledged,
# though: otherwise the doubling batches put 3040 records on the wire before the first
# acknowledgement, all lost when the receiver is killed as the session starts.
FIRST_BATCH_RECORDS = 32
GROUP_SHARE = 8  # without an inbox, a kill at a random frame of a 20k initial sync loses
# 6.8 % of it on average (share 4: 11.6 %, 2: 15.8 %; fixed groups and window: 49 %); a
# 100k sync then makes 26 commits instead of 14, for the same CPU (measured in process)
WINDOW_START_RECORDS = 2 * FIRST_BATCH_RECORDS
# The counts suit records of a few hundred bytes. Large records (attachment chunks of up
# to 256 KiB) are bounded by their bytes too, so both ends hold a few MiB of them: the
# sender waits once WINDOW_BYTES of large records are unacknowledged, the receiver stores
# once COMMIT_BYTES are pending, keeping back at most LOOKAHEAD_BYTES. LOOKAHEAD_BYTES +
# one batch < COMMIT_BYTES <= WINDOW_BYTES, or the two would wait on each other.
LARGE_RECORD_BYTES = 32 * 1024
WINDOW_BYTES = 3 * 1024 * 1024
COMMIT_BYTES = 2 * 1024 * 1024
LOOKAHEAD_BYTES = 512 * 1024
MAX_ROUNDS = 8  # bounds the exchange while writes keep arriving during it
STALL_SECONDS = 60.0  # no message at all during the initial exchange: give up
MAX_PEER_IDS = 1 << 21  # record IDs a peer may list in one exchange: 64 MiB, as bytes


def _holds(sorted_ids: bytes, rid: bytes) -> bool:
    """Whether ``rid`` is among the concatenated sorted 32-byte IDs (binary search)."""
    lo, hi = 0, len(sorted_ids) // RECORD_ID_BYTES
    while lo < hi:
        mid = (lo + hi) // 2
        here = sorted_ids[mid * RECORD_ID_BYTES:(mid + 1) * RECORD_ID_BYTES]
        if here == rid:
            return True
        if here < rid:
            lo = mid + 1
        else:
            hi = mid
    return False


def _large(encoded: Iterable[bytes]) -> int:
    """Bytes of the large records among these (what the byte bounds count)."""
    return sum(n for n in map(len, encoded) if n >= LARGE_RECORD_BYTES)


class Phase(enum.Enum):
    """Where the initial exchange stands."""

    NEW = "new"
    AWAIT_SUMMARY = "await-summary"
    STREAMING = "streaming"
    IN_SYNC = "in-sync"


class Mode(enum.Enum):
    """How a round finds what the peer lacks."""

    DELTA = "delta"
    ID_LIST = "id-list"


class _Blocked:
    """Stream item: nothing to send until the peer's record ID list is complete."""


BLOCKED = _Blocked()
StreamItem = list[bytes] | tuple[tuple[bytes, ...], bool] | _Blocked  # encoded records


@dataclass(slots=True)
class SessionOutput:
    """What one input produced: frames to send and what the store accepted."""

    send: list[bytes] = field(default_factory=list)
    applied: list[Record] = field(default_factory=list)
    membership_changed: bool = False
    revoked: set[bytes] = field(default_factory=set)
    finished_initial: bool = False
    refused: int = 0

    def absorb(self, result: ApplyResult) -> None:
        """Add what a batch application did."""
        self.applied.extend(result.applied)
        self.membership_changed |= result.membership_changed
        self.revoked |= result.revoked
        self.refused += result.refused


@dataclass(slots=True)
class SessionStats:
    """Counters for logs, tests and the benchmark."""

    rounds: int = 0
    records_sent: int = 0
    records_received: int = 0
    records_applied: int = 0
    refused: int = 0
    frames_sent: int = 0
    bytes_sent: int = 0
    frames_received: int = 0
    bytes_received: int = 0
    id_exchanges: int = 0
    fingerprint_mismatch: bool = False  # fingerprints still differed when the exchange ended


class SyncSession:
    """The replication protocol with one authenticated peer."""

    def __init__(self, replica: Replica, peer_id: bytes, *, now: float) -> None:
        self.replica = replica
        self.store = replica.store
        self.peer_id = peer_id
        self.stats = SessionStats()
        self._phase = Phase.NEW
        self._round = 0
        self._mode = Mode.DELTA
        self._mine: tuple[dict[bytes, int], bytes] | None = None
        self._theirs: tuple[Mapping[bytes, int], bytes] | None = None
        self._got_hello = False
        self._stream: Iterator[StreamItem] | None = None
        self._unacked: deque[int] = deque()
        self._unacked_sizes: dict[int, int] = {}  # serial -> bytes of its large records
        self._unacked_bytes = 0
        self._unacked_records: dict[int, int] = {}  # serial -> records in it
        self._in_flight = 0  # records sent and not acknowledged
        self._acked = 0  # records of this session's stream the peer acknowledged
        self._next_serial = 0
        self._peer_serial = 0
        self._sent_done = False
        self._peer_done: Done | None = None
        self._sent_count = 0
        self._received_count = 0
        self._applied_this_round = 0
        self._applied_last_round = 0
        self._id_exchange_done = False
        self._peer_ids = bytearray()  # the peer's sorted record IDs, 32 bytes each
        self._peer_ids_complete = False
        self._pending: list[tuple[int, PreparedBatch]] = []
        self._group = FIRST_BATCH_RECORDS  # records in the next commit (see GROUP_SHARE)
        self._stored = 0  # records of the peer's stream this session committed
        self._pending_bytes = 0
        self._last_batch = 0  # records in the last batch sent
        self._last_progress = now

    # --- public face -----------------------------------------------------------------------

    @property
    def in_sync(self) -> bool:
        """The initial exchange finished both ways; only live pushes follow."""
        return self._phase is Phase.IN_SYNC

    @property
    def records_behind(self) -> int | None:
        """About how many records the peer's HELLO promised that have not arrived yet."""
        if self._theirs is None or self._mine is None:
            return None
        theirs, mine = self._theirs[0], self._mine[0]
        promised = sum(max(0, n - mine.get(origin, 0)) for origin, n in theirs.items())
        return max(0, promised - self.stats.records_received)

    @property
    def uncommitted(self) -> int:
        """Batches received and not stored yet: always the newest batches that arrived."""
        return len(self._pending)

    @property
    def phase(self) -> Phase:
        """The current phase (for logs and tests)."""
        return self._phase

    def start(self, now: float) -> list[bytes]:
        """The frames to send first: our HELLO."""
        if self._phase is not Phase.NEW:
            return []
        self._last_progress = now
        self._phase = Phase.AWAIT_SUMMARY
        seen, fp = self._mine = self._snapshot()
        return [self._encode(Hello(PROTOCOL_VERSION, self.replica.vault_id, vector(seen), fp))]

    def receive(self, frame: bytes, now: float) -> SessionOutput:
        """Handle one frame from the peer; malformed or out-of-place input raises."""
        out = SessionOutput()
        if self._phase is Phase.NEW:
            out.send.extend(self.start(now))
        self.stats.frames_received += 1
        self.stats.bytes_received += len(frame)
        msg = decode_message(frame)
        self._last_progress = now
        was_in_sync = self.in_sync
        self._dispatch(msg, out)
        self._pump(out)
        out.finished_initial = self.in_sync and not was_in_sync
        return out

    def push(self, records: Sequence[Record]) -> list[bytes]:
        """Frames carrying newly committed (local or relayed) records to the peer."""
        if self._phase is Phase.NEW or not records:
            return []  # not started: the initial exchange will carry them
        return [self._encode(Push(tuple(b))) for b in batches(r.encoded for r in records)]

    def next_timer(self) -> float | None:
        """When :meth:`handle_timer` wants to run (stall detection of the initial exchange)."""
        if self._phase in (Phase.NEW, Phase.IN_SYNC):
            return None
        return self._last_progress + STALL_SECONDS

    def handle_timer(self, now: float) -> list[bytes]:
        """Raise :class:`ProtocolError` if the initial exchange made no progress for too long."""
        deadline = self.next_timer()
        if deadline is not None and now >= deadline:
            raise ProtocolError(
                f"sync with the peer stalled: nothing received for {STALL_SECONDS:.0f} s")
        return []

    # --- internals -------------------------------------------------------------------------

    def _snapshot(self) -> tuple[dict[bytes, int], bytes]:
        return self.store.seen(), self.store.fingerprint()

    def _encode(self, msg: Message) -> bytes:
        frame = encode_message(msg)
        self.stats.frames_sent += 1
        self.stats.bytes_sent += len(frame)
        return frame

    def _dispatch(self, msg: Message, out: SessionOutput) -> None:
        """Run the handler the table names for this phase and message type."""
        handler = _TRANSITIONS.get((self._phase, type(msg)))
        if handler is None:
            raise ProtocolError(f"unexpected {type(msg).__name__.upper()} while "
                                f"{self._phase.value} (protocol violation)")
        handler(self, msg, out)

    def _on_push(self, msg: Push, out: SessionOutput) -> None:
        self._require(self._got_hello, "PUSH before HELLO")
        self._commit_pending(out)
        self._commit([self.replica.prepare(self._decode(msg.records))], out)

    def _on_summary(self, msg: Summary, out: SessionOutput) -> None:
        self._require(self._got_hello and msg.round == self._round, "unexpected SUMMARY")
        self._theirs = (dict(msg.seen), msg.fingerprint)
        self._applied_last_round += msg.applied
        self._begin_round(out)

    def _on_batch(self, msg: Batch, out: SessionOutput) -> None:
        self._require(self._peer_done is None
                      and (self._mode is Mode.DELTA or self._peer_ids_complete),
                      "unexpected BATCH")
        self._take_serial(msg.serial)
        self._received_count += len(msg.records)
        self._pending.append((msg.serial, self.replica.prepare(self._decode(msg.records))))
        self._pending_bytes += _large(msg.records)
        pending = self._pending_records()
        if pending >= 2 * self._group or len(self._pending) >= COMMIT_GROUP + LOOKAHEAD \
                or self._pending_bytes >= COMMIT_BYTES:
            self._commit_pending(out, keep=self._lookahead(self._group))
            self._grow_group(pending)

    def _on_id_list(self, msg: IdList, out: SessionOutput) -> None:
        self._require(self._mode is Mode.ID_LIST and not self._peer_ids_complete,
                      "unexpected ID_LIST")
        self._take_serial(msg.serial)
        if msg.ids and self._peer_ids and msg.ids[0] <= self._peer_ids[-RECORD_ID_BYTES:]:
            raise ProtocolError("record ID list is not sorted")
        if len(self._peer_ids) // RECORD_ID_BYTES + len(msg.ids) > MAX_PEER_IDS:
            raise ProtocolError(f"peer lists more than {MAX_PEER_IDS} record IDs")
        self._peer_ids += b"".join(msg.ids)
        self._peer_ids_complete = msg.last
        out.send.append(self._encode(Checkpoint(msg.serial)))

    def _on_checkpoint(self, msg: Checkpoint, out: SessionOutput) -> None:
        self._require(bool(self._unacked) and self._unacked[0] == msg.serial,
                      "CHECKPOINT for nothing sent")
        self._unacked.popleft()
        self._unacked_bytes -= self._unacked_sizes.pop(msg.serial)
        records = self._unacked_records.pop(msg.serial)
        self._in_flight -= records
        self._acked += records

    def _on_done(self, msg: Done, out: SessionOutput) -> None:
        self._require(self._peer_done is None and msg.round == self._round
                      and (self._mode is Mode.DELTA or self._peer_ids_complete),
                      "unexpected DONE")
        pending = self._pending_records()
        self._commit_pending(out)
        self._grow_group(pending)
        if msg.records != self._received_count:
            raise ProtocolError(f"peer says it sent {msg.records} records, "
                                f"{self._received_count} arrived")
        self._peer_done = msg

    @staticmethod
    def _require(condition: bool, what: str) -> None:
        if not condition:
            raise ProtocolError(f"{what} (protocol violation)")

    def _take_serial(self, serial: int) -> None:
        if serial != self._peer_serial:
            raise ProtocolError(f"stream item {serial} arrived, {self._peer_serial} expected")
        self._peer_serial += 1

    def _on_hello(self, msg: Hello, out: SessionOutput) -> None:
        self._require(not self._got_hello, "second HELLO")
        if msg.vault_id != self.replica.vault_id:
            raise ProtocolError(
                f"peer syncs vault {msg.vault_id.hex()}, this device holds vault "
                f"{self.replica.vault_id.hex()}")
        self._got_hello = True
        self._theirs = (dict(msg.seen), msg.fingerprint)
        self._begin_round(out)

    @staticmethod
    def _decode(encoded: Sequence[bytes]) -> list[Record]:
        """Decode every record first: one malformed record rejects the whole message."""
        try:
            return [Record.decode(e) for e in encoded]
        except IntegrityError as exc:
            raise ProtocolError(f"malformed record from peer: {exc}") from exc

    def _pending_records(self) -> int:
        return sum(len(prepared.records) for _serial, prepared in self._pending)

    def _grow_group(self, pending_before: int) -> None:
        """Count what the last commit stored; the next group is a share of all stored."""
        self._stored += pending_before - self._pending_records()
        self._group = max(FIRST_BATCH_RECORDS, self._stored // GROUP_SHARE)

    def _window_records(self) -> int:
        """Records the sender may have unacknowledged: at least what the peer's next commit
        needs (twice its group, which the peer sizes from the same acknowledged records),
        and two batches, one to check while the other is stored, once about as many were
        acknowledged (a slow start: see the constants)."""
        return max(WINDOW_START_RECORDS + 2 * self._acked // GROUP_SHARE,
                   min(2 * self._last_batch, WINDOW_START_RECORDS + self._acked))

    def _lookahead(self, most: int) -> int:
        """How many of the newest pending batches to keep back: at most ``most`` records
        (but always the newest batch), in at most ``LOOKAHEAD`` batches and
        ``LOOKAHEAD_BYTES`` of large records."""
        keep = size = records = 0
        for _serial, prepared in reversed(self._pending[1:]):
            size += _large(r.encoded for r in prepared.records)
            records += len(prepared.records)
            if keep == LOOKAHEAD or (keep and records > most) or size > LOOKAHEAD_BYTES:
                break
            keep += 1
        return keep

    def _commit_pending(self, out: SessionOutput, *, keep: int = 0) -> None:
        """Store held-back batches in one transaction, then acknowledge each.

        The newest ``keep`` batches stay behind so their signature checks, running on
        other cores, overlap with storing the ones before them.
        """
        group = self._pending[:len(self._pending) - keep]
        self._pending = self._pending[len(group):]
        if not group:
            return
        self._pending_bytes -= _large(r.encoded for _s, p in group for r in p.records)
        self._commit([prepared for _serial, prepared in group], out)
        out.send.extend(self._encode(Checkpoint(serial)) for serial, _p in group)

    def _commit(self, group: list[PreparedBatch], out: SessionOutput) -> None:
        """Store batches in one transaction (the replica opens it) and count what they did."""
        for prepared, result in zip(group, self.replica.commit_group(group), strict=True):
            out.absorb(result)
            self.stats.records_received += len(prepared.records)
            self.stats.records_applied += len(result.applied)
            self.stats.refused += result.refused
            self._applied_this_round += len(result.applied)

    def _begin_round(self, out: SessionOutput) -> None:
        assert self._mine is not None and self._theirs is not None
        peer_seen, peer_fp = self._theirs
        if self._mine[1] == peer_fp:
            self._finish(matched=True)
            return
        self.stats.rounds += 1
        if self._round >= MAX_ROUNDS:
            log.warning("sync with %s: still differing after %d rounds; live pushes continue",
                        self.peer_id.hex()[:16], self._round)
            self._finish(matched=False)
            return
        if self._round == 0 or self._applied_last_round:
            self._mode = Mode.DELTA
            self._stream = (b for b in batches(records_missing(self.store, peer_seen),
                                               first=FIRST_BATCH_RECORDS))
        elif not self._id_exchange_done:
            log.warning("sync with %s: fingerprints differ although nothing is missing by "
                        "seq; exchanging record IDs", self.peer_id.hex()[:16])
            self._mode = Mode.ID_LIST
            self._id_exchange_done = True
            self.stats.id_exchanges += 1
            self._stream = self._id_stream()
        else:
            log.error("sync with %s: fingerprints differ even after exchanging record IDs",
                      self.peer_id.hex()[:16])
            self._finish(matched=False)
            return
        self._phase = Phase.STREAMING

    def _finish(self, *, matched: bool) -> None:
        self._phase = Phase.IN_SYNC
        self._stream = None
        self.stats.fingerprint_mismatch = not matched

    def _id_stream(self) -> Iterator[StreamItem]:
        """Our sorted record IDs in chunks, then (once theirs are in) what they lack; twins
        kept aside too (the fingerprint sums them): this carries the lower twin of an
        equivocation to a peer that holds the higher one, and the higher to the other."""
        chunk: list[bytes] = []
        for rid in self.store.synced_ids():
            chunk.append(rid)
            if len(chunk) == MAX_IDS_PER_LIST:
                yield tuple(chunk), False
                chunk = []
        yield tuple(chunk), True
        while not self._peer_ids_complete:
            yield BLOCKED
        theirs, self._peer_ids = bytes(self._peer_ids), bytearray()
        lacking = [r for rid in self.store.synced_ids() if not _holds(theirs, rid)
                   if (r := self.store.get_record(rid)) is not None]
        lacking.sort(key=lambda r: (r.header.kind != Kind.MEMBER, r.header.author,
                                    r.header.seq))
        yield from batches(r.encoded for r in lacking)

    def _pump(self, out: SessionOutput) -> None:
        """Send stream items while the window allows; close the round when both are done."""
        while self._stream is not None and len(self._unacked) < WINDOW \
                and self._in_flight < self._window_records() \
                and self._unacked_bytes < WINDOW_BYTES:
            item = next(self._stream, None)
            if item is None:
                self._stream = None
                break
            if isinstance(item, _Blocked):
                break
            serial = self._next_serial
            self._next_serial += 1
            self._unacked.append(serial)
            size = records = 0
            if isinstance(item, list):
                records = self._last_batch = len(item)
                self._sent_count += len(item)
                self.stats.records_sent += len(item)
                size = _large(item)
                out.send.append(self._encode(Batch(serial, tuple(item))))
            else:
                out.send.append(self._encode(IdList(serial, item[0], item[1])))
            self._unacked_sizes[serial] = size
            self._unacked_bytes += size
            self._unacked_records[serial] = records
            self._in_flight += records
        if self._phase is not Phase.STREAMING:
            return
        if self._stream is None and not self._sent_done:
            out.send.append(self._encode(Done(self._round, self._sent_count)))
            self._sent_done = True
        if self._sent_done and not self._unacked and self._peer_done is not None:
            applied = self._applied_this_round
            self._applied_last_round = applied  # the peer's count arrives in its SUMMARY
            self._applied_this_round = 0
            self._round += 1
            self._sent_done = False
            self._peer_done = None
            self._sent_count = self._received_count = 0
            self._peer_ids, self._peer_ids_complete = bytearray(), False
            self._phase = Phase.AWAIT_SUMMARY
            seen, fp = self._mine = self._snapshot()
            self._theirs = None
            out.send.append(self._encode(Summary(self._round, vector(seen), fp, applied)))


_Handler = Callable[[SyncSession, Any, SessionOutput], None]
_TRANSITIONS: dict[tuple[Phase, type[Message]], _Handler] = {
    (Phase.AWAIT_SUMMARY, Hello): SyncSession._on_hello,
    (Phase.AWAIT_SUMMARY, Summary): SyncSession._on_summary,
    (Phase.AWAIT_SUMMARY, Push): SyncSession._on_push,
    (Phase.STREAMING, Batch): SyncSession._on_batch,
    (Phase.STREAMING, IdList): SyncSession._on_id_list,
    (Phase.STREAMING, Checkpoint): SyncSession._on_checkpoint,
    (Phase.STREAMING, Done): SyncSession._on_done,
    (Phase.STREAMING, Push): SyncSession._on_push,
    (Phase.STREAMING, Hello): SyncSession._on_hello,  # refused there: "second HELLO"
    (Phase.IN_SYNC, Push): SyncSession._on_push,
    (Phase.IN_SYNC, Hello): SyncSession._on_hello,
}
