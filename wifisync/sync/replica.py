"""The replication model: which records a device accepts, and what accepting them changes.

Every record from the wire passes here before it reaches the store: it must belong to our
vault, name an author that is a member (a revoked one only up to its revocation point),
carry that author's valid signature, and, for membership and vault-key records, a body
that parses. Refused records are counted and never stored. No I/O beyond the store.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from ..chunks import chunk_record_ok
from ..errors import IntegrityError
from ..identity import public_key_of_certificate, verify_signature
from ..membership import Member, members
from ..records import (
    VAULT_KEY_ITEM,
    Kind,
    Membership,
    Record,
    WrappedVaultKey,
    member_item_id,
)
from ..sigproc import SignatureWorkers, shared_workers
from ..store import AppendResult, RecordStore

log = logging.getLogger(__name__)

PARALLEL_VERIFY_MIN = 64  # records below which handing work to threads costs more than it saves
PROCESS_VERIFY_MIN = 256  # records from which helper processes check (no GIL hand-offs)
VERIFY_THREADS = max(1, min(4, os.cpu_count() or 1))

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def verify_pool() -> Executor:
    """A small shared thread pool: Ed25519 verification releases the GIL."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(VERIFY_THREADS, thread_name_prefix="wifisync-verify")
        return _pool


@dataclass(slots=True)
class ApplyResult:
    """What applying a batch did."""

    applied: list[Record] = field(default_factory=list)  # newly stored, in arrival order
    refused: int = 0
    membership_changed: bool = False
    revoked: set[bytes] = field(default_factory=set)
    duplicates: int = 0


def _signature_ok(record: Record, key: bytes) -> bool:
    try:
        verify_signature(key, record.signature, record.signed_message())
    except IntegrityError:
        return False
    return True


class SignatureChecks:
    """Signature checks of (record, key) pairs, started at once and collected later.

    Large batches go to helper processes (:mod:`wifisync.sigproc`), medium ones to the
    thread pool, small ones are checked on the spot. Whatever a helper fails to answer
    is checked here instead: no record is ever taken as signed without a check.
    """

    def __init__(self, pairs: list[tuple[Record, bytes]], pool: Executor | None,
                 workers: SignatureWorkers | None = None) -> None:
        self.keys = {r.id: k for r, k in pairs}
        self._results: dict[bytes, bool] = {}
        self._futures: list[Future[list[tuple[bytes, bool]]]] = []
        self._remote: list[tuple[list[Record], bytes, Future[bytes]]] = []
        if workers is not None and len(pairs) >= PROCESS_VERIFY_MIN:
            by_key: dict[bytes, list[Record]] = {}
            for r, k in pairs:
                by_key.setdefault(k, []).append(r)
            for key, records in by_key.items():
                size = -(-len(records) // VERIFY_THREADS)
                for i in range(0, len(records), size):
                    chunk = records[i:i + size]
                    self._remote.append((chunk, key, workers.submit(
                        key, [(r.signature, r.signed_message()) for r in chunk])))
            return
        if pool is None or len(pairs) < PARALLEL_VERIFY_MIN:
            self._results = {r.id: _signature_ok(r, k) for r, k in pairs}
            return
        parts = min(VERIFY_THREADS * 2, len(pairs) // (PARALLEL_VERIFY_MIN // 2))
        size = -(-len(pairs) // parts)
        self._futures = [pool.submit(_check_chunk, pairs[i:i + size])
                         for i in range(0, len(pairs), size)]

    def result(self, record: Record, key: bytes) -> bool:
        """Whether ``record`` is validly signed by ``key`` (checked now if not started)."""
        if self._futures:
            futures, self._futures = self._futures, []
            self._results.update(rid_ok for f in futures for rid_ok in f.result())
        if self._remote:
            remote, self._remote = self._remote, []
            for chunk, chunk_key, future in remote:
                self._results.update(_collect(chunk, chunk_key, future))
        if self.keys.get(record.id) != key:
            return _signature_ok(record, key)
        return self._results[record.id]


def _collect(chunk: list[Record], key: bytes, future: Future[bytes]
             ) -> list[tuple[bytes, bool]]:
    """A helper's answers for ``chunk``, or our own checks when it gave none we can use."""
    try:
        flags = future.result()
        if isinstance(flags, bytes) and len(flags) == len(chunk) \
                and set(flags) <= {0, 1}:
            return [(r.id, flag == 1) for r, flag in zip(chunk, flags, strict=True)]
        log.warning("signature helper answered out of shape; checking here")
    except Exception as exc:  # the helper could not start or died: check here
        log.warning("signature helper failed (%s); checking here", exc)
    return [(r.id, _signature_ok(r, key)) for r in chunk]


def _check_chunk(pairs: list[tuple[Record, bytes]]) -> list[tuple[bytes, bool]]:
    return [(r.id, _signature_ok(r, k)) for r, k in pairs]


@dataclass(slots=True)
class PreparedBatch:
    """A batch whose signature checks are running; :meth:`Replica.commit` stores it."""

    records: list[Record]
    checks: SignatureChecks


def _body_ok(record: Record) -> bool:
    """Kind-specific structure the daemon can check without the vault key."""
    h = record.header
    try:
        if h.kind == Kind.MEMBER:
            return h.item == member_item_id(Membership.decode(record.body).device_id)
        if h.kind == Kind.VAULT_KEY:
            WrappedVaultKey.decode(record.body)
            return h.item == VAULT_KEY_ITEM
        if h.kind == Kind.CHUNK:
            return chunk_record_ok(record) and h.item != VAULT_KEY_ITEM
    except IntegrityError:
        return False
    return h.item != VAULT_KEY_ITEM


class Replica:
    """Accepts records for one vault into one store; shared by every session of a daemon."""

    def __init__(self, store: RecordStore, vault_id: bytes, self_id: bytes, *,
                 pool: Executor | None = None, parallel: bool = True) -> None:
        self.store = store
        self.vault_id = vault_id
        self.self_id = self_id
        self._pool = pool if pool is not None else (verify_pool() if parallel else None)
        self._workers = shared_workers() if parallel else None

    def members(self) -> dict[bytes, Member]:
        """Every member the store knows (revoked ones included)."""
        return members(self.store)

    def _author_ok(self, record: Record, known: dict[bytes, Member]) -> bool:
        m = known.get(record.header.author)
        if m is None:
            return False
        return m.revoked_after is None or record.header.seq <= m.revoked_after

    def apply(self, records: Sequence[Record]) -> ApplyResult:
        """Check and store a batch in one store transaction; returns what changed."""
        return self.commit(self.prepare(records))

    def prepare(self, records: Sequence[Record]) -> PreparedBatch:
        """Start the signature checks of a batch on the thread pool and return at once.

        Sync overlaps the checks of one batch with storing the previous one: Ed25519
        releases the GIL, SQLite and decoding do not.
        """
        known = self.members()
        pairs = [(r, known[r.header.author].public_key) for r in records
                 if r.header.kind != Kind.MEMBER and r.header.author in known]
        return PreparedBatch(list(records), SignatureChecks(pairs, self._pool, self._workers))

    def commit(self, batch: PreparedBatch) -> ApplyResult:
        """Check membership against the store as it is now and store the batch atomically."""
        result = ApplyResult()
        records = batch.records
        with self.store.transaction():
            known = self.members()
            member_recs = [r for r in records if r.header.kind == Kind.MEMBER]
            others = [r for r in records if r.header.kind != Kind.MEMBER]
            if member_recs:
                known = self._apply_members(member_recs, known, result)
            accepted: list[Record] = []
            for r in others:
                if r.header.vault != self.vault_id or not self._author_ok(r, known) \
                        or not _body_ok(r) \
                        or not batch.checks.result(r, known[r.header.author].public_key):
                    result.refused += 1
                    continue
                accepted.append(r)
            self._store_all(accepted, result)
        if result.refused:
            log.info("refused %d of %d records", result.refused, len(records))
        return result

    def _apply_members(self, pending: list[Record], known: dict[bytes, Member],
                       result: ApplyResult) -> dict[bytes, Member]:
        """Apply MEMBER records, each as soon as its author is known (any order of arrival)."""
        while pending:
            waiting: list[Record] = []
            progress = False
            for r in pending:
                if r.header.vault != self.vault_id or not _body_ok(r):
                    result.refused += 1
                    continue
                if r.header.author not in known:
                    waiting.append(r)
                    continue
                if not self._author_ok(r, known) or \
                        not _signature_ok(r, known[r.header.author].public_key):
                    result.refused += 1
                    continue
                progress = True
                if self._store_all([r], result):
                    known = self._after_membership_change(known, result)
            if not progress:
                result.refused += len(waiting)
                break
            pending = waiting
        return known

    def _after_membership_change(self, before: dict[bytes, Member], result: ApplyResult
                                 ) -> dict[bytes, Member]:
        """Reload members; a new or earlier revocation purges the device's later records."""
        result.membership_changed = True
        now = self.members()
        for device, m in now.items():
            old = before.get(device)
            if m.revoked_after is None:
                continue
            if old is None or old.revoked_after is None or m.revoked_after < old.revoked_after:
                purged = self.store.purge_after(device, m.revoked_after)
                result.revoked.add(device)
                log.info("device %s revoked after %d; %d later records dropped",
                         device.hex()[:16], m.revoked_after, purged)
        return now

    def _store_all(self, records: list[Record], result: ApplyResult) -> int:
        """Append checked records; returns how many were new."""
        try:
            outcomes: list[AppendResult | None] = list(self.store.append_many(records))
        except IntegrityError:
            # The author equivocated (another record with the same origin and seq is held):
            # nothing was written; store the others one by one and refuse the twins.
            outcomes = []
            for r in records:
                try:
                    outcomes.append(self.store.append_many([r])[0])
                except IntegrityError:
                    outcomes.append(None)
        new = 0
        for r, outcome in zip(records, outcomes, strict=True):
            if outcome is None:
                result.refused += 1
            elif outcome is AppendResult.DUPLICATE:
                result.duplicates += 1
            else:
                result.applied.append(r)
                new += 1
        return new

    def bootstrap(self, records: Sequence[Record]) -> ApplyResult:
        """Store the member and vault-key records handed over at pairing.

        The pairing authenticated them, so their authors may be introduced by the set
        itself (the vault creator's own first membership record is self-signed); each
        signature is still checked against the key its author's membership names.
        """
        result = ApplyResult()
        with self.store.transaction():
            keys = {d: m.public_key for d, m in self.members().items()}
            for r in records:
                if r.header.kind == Kind.MEMBER and _body_ok(r):
                    cert = Membership.decode(r.body).cert_der
                    device = Membership.decode(r.body).device_id
                    keys.setdefault(device, public_key_of_certificate(cert))
            before = self.members()
            ordered = sorted(records, key=lambda r: r.header.kind != Kind.MEMBER)
            for r in ordered:
                key = keys.get(r.header.author)
                if r.header.kind in (Kind.ITEM, Kind.CHUNK) or r.header.vault != self.vault_id \
                        or not _body_ok(r) or key is None or not _signature_ok(r, key):
                    result.refused += 1
                    continue
                self._store_all([r], result)
            if any(r.header.kind == Kind.MEMBER for r in result.applied):
                self._after_membership_change(before, result)
        return result
