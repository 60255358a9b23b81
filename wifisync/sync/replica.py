"""Taking records in: the accept rule (:mod:`wifisync.sync.acceptance`) applied to sync batches.

Every record from the wire or the pairing hand-over passes here before it reaches the
store. Refused records are counted and never stored; inactive ones are stored but take
no part in their item's versions until the rule accepts them. Twins (an author's two
records with one seq) are settled by the store's rule: the lowest ID holds the place, the
others are kept aside. Membership changes re-judge the records they touch; nothing is ever
deleted. No I/O beyond the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from wifisync.errors import IntegrityError
from wifisync.model.clock import hlc_wall_ms
from wifisync.model.membership import (
    Member,
    MembershipMemo,
    compute,
    member_records,
    remember,
    view_of,
)
from wifisync.model.records import Kind, Record
from wifisync.model.verifier import RememberingVerifier, Verdicts, Verifier
from wifisync.store import AppendResult, RecordStore
from wifisync.sync.acceptance import MAX_FUTURE_MS, MAX_WAITING, Acceptance, body_ok

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ApplyResult:
    """What applying a batch did."""

    applied: list[Record] = field(default_factory=list)  # newly stored, in arrival order
    refused: int = 0
    membership_changed: bool = False
    revoked: set[bytes] = field(default_factory=set)
    duplicates: int = 0


@dataclass(slots=True)
class PreparedBatch:
    """A batch whose signature checks are running; :meth:`Replica.commit_group` stores it."""

    records: list[Record]
    verdicts: Verdicts


class Replica:
    """Takes records into one vault's store by the accept rule; shared by a daemon's sessions.

    Signatures are checked by the ``verifier`` its owner injects (the daemon's runs in
    helper processes); ``now_ms`` is the owner's wall clock, for the future-time rule;
    ``on_stored``, if given, is told of the records each commit stored (every signature
    checked), inside that commit's transaction: the daemon marks them there. With
    ``durable=False`` its transactions are not synced to disk when they commit (see
    :meth:`RecordStore.transaction`): for a daemon, whose records all come from peers
    that still hold them; what this device writes itself always goes through the author.
    """

    def __init__(self, store: RecordStore, vault_id: bytes, self_id: bytes, *,
                 verifier: Verifier, now_ms: Callable[[], int],
                 on_stored: Callable[[Sequence[Record]], None] | None = None,
                 durable: bool = True) -> None:
        self.store = store
        self.durable = durable
        self.vault_id = vault_id
        self.self_id = self_id
        self.now_ms = now_ms
        self.verifier = verifier
        self.on_stored = on_stored
        self._memo = MembershipMemo(RememberingVerifier(verifier))
        self._logged: set[tuple[bytes, str]] = set()

    def named_devices(self) -> dict[bytes, Member]:
        """Every device the store's MEMBER records name (revoked ones included)."""
        return view_of(self.store).members

    def apply(self, records: Sequence[Record]) -> ApplyResult:
        """Check and store one batch in one store transaction; returns what changed."""
        return self.commit(self.prepare(records))

    def prepare(self, records: Sequence[Record]) -> PreparedBatch:
        """Start the signature checks of a batch and return at once.

        Sync overlaps the checks of one batch with storing the previous one.
        """
        view = view_of(self.store)
        claims = [(r, key) for r in records if r.header.kind != Kind.MEMBER
                  and (key := view.key_of(r.header.author)) is not None]
        return PreparedBatch(list(records), self.verifier.submit(claims))

    def commit(self, batch: PreparedBatch) -> ApplyResult:
        """Store one prepared batch in one store transaction (a group of one)."""
        return self.commit_group([batch])[0]

    def commit_group(self, batches: Sequence[PreparedBatch]) -> list[ApplyResult]:
        """Store prepared batches in one store transaction, each by the accept rule.

        The one place that opens a transaction for records from outside (sync, the pairing
        hand-over, restore): a session groups batches so that SQLite commits (and waits
        for an fsync) once per group, and acknowledges them once this returns.
        """
        with self.store.transaction(durable=self.durable):
            accept = Acceptance(self.store, self.vault_id, self.now_ms)
            return [self._commit(batch, accept) for batch in batches]

    def _commit(self, batch: PreparedBatch, accept: Acceptance) -> ApplyResult:
        """Apply the accept rule against the store as it is now (inside the group's
        transaction); ``accept`` carries the membership the store's records make."""
        result = ApplyResult()
        records = batch.records
        before = accept.view
        member_recs = [r for r in records if r.header.kind == Kind.MEMBER]
        if member_recs:
            self._store_members(member_recs, accept, result)
            if result.membership_changed:
                accept.note_learned(before)
        checked: list[Record] = []
        others = [r for r in records if r.header.kind != Kind.MEMBER] if member_recs \
            else records
        holds = batch.verdicts.holds
        for r, (reason, key) in zip(others, accept.refusals(others), strict=True):
            if reason is None and (key is None or not holds(r, key)):
                reason = "bad signature"
            if reason is not None:
                self._refuse(r, reason, result)
                continue
            checked.append(r)
        stored = self._store_checked(checked, accept, result)
        if result.membership_changed:
            result.revoked |= accept.rejudge(before)
        elif stored and self.store.count_inactive():
            accept.set_activity(self.store.inactive_records({r.header.item for r in stored}))
        if self.on_stored is not None and result.applied:
            self.on_stored(result.applied)
        if result.refused:
            log.info("refused %d of %d records", result.refused, len(records))
        return result

    def _refuse(self, record: Record, reason: str, result: ApplyResult) -> None:
        """Count a refused record; log each (author, reason) once per process."""
        result.refused += 1
        key = (record.header.author, reason)
        if key not in self._logged and len(self._logged) < 1024:
            self._logged.add(key)
            log.warning("refused a record of device %s: %s (logged once)",
                        record.header.author.hex()[:16], reason)

    def _store_members(self, records: list[Record], accept: Acceptance,
                       result: ApplyResult) -> None:
        """Store MEMBER records whose author a chain from the creator names (any order).

        Membership is computed once: the view of the held and the offered records is the
        store's view afterwards unless one of them is refused (rare: then it is recomputed).
        """
        both = {r.id: r for r in member_records(self.store) + records}
        view = compute(self.vault_id, both.values(), self._memo)
        claims = [(r, key) for r in records if (key := view.key_of(r.header.author)) is not None]
        verdicts = self._memo.verifier.submit(claims)
        ok: list[Record] = []
        for r in records:
            key = view.key_of(r.header.author)
            reason = None if r.header.vault == self.vault_id else "another vault"
            if reason is None and not body_ok(r):
                reason = "malformed body"
            if reason is None and key is None:
                reason = "unknown author"
            if reason is None and not verdicts.holds(r, key or b""):
                reason = "bad signature"
            if reason is None and hlc_wall_ms(r.header.time) > self.now_ms() + MAX_FUTURE_MS:
                reason = "clock time too far ahead"
            if reason is not None:
                self._refuse(r, reason, result)
            else:
                ok.append(r)
        refused = result.refused
        if self._store_all(ok, result, frozenset()):
            result.membership_changed = True
            if len(ok) == len(records) and result.refused == refused:
                accept.refresh(remember(self.store, view))
            else:
                accept.refresh()

    def _store_checked(self, records: list[Record], accept: Acceptance,
                       result: ApplyResult) -> list[Record]:
        """Store checked records, inactive where the rule says so; returns the new ones."""
        batch: set[tuple[bytes, int, bytes]] = set()  # filled for the first record that
        # claims versions of other devices (a record of one counter, its author's, claims none)
        inactive: set[bytes] = set()
        room: int | None = None
        keep: list[Record] = []
        for r in records:
            claims_others = len(r.header.versions) > 1
            if claims_others and not batch:
                batch = {(x.header.author, x.header.seq, x.header.item) for x in records}
            if not accept.author_counts(r):
                inactive.add(r.id)
            elif claims_others and not accept.claims_held(r, batch):
                if room is None:
                    room = MAX_WAITING - self.store.count_inactive()
                if room <= 0:
                    self._refuse(r, "too many records wait for versions they claim", result)
                    continue
                room -= 1
                inactive.add(r.id)
            keep.append(r)
        before = len(result.applied)
        self._store_all(keep, result, inactive)
        return result.applied[before:]

    def _store_all(self, records: list[Record], result: ApplyResult,
                   inactive: AbstractSet[bytes]) -> int:
        """Append checked records; returns how many were new."""
        try:
            outcomes = self.store.append_many(records, inactive)
        except IntegrityError:
            # The author equivocated (two records with one origin and seq, held or in this
            # batch): nothing was written; store them one by one, each twin by the rule.
            outcomes = [self._store_one(r, inactive) for r in records]
        new = 0
        for r, outcome in zip(records, outcomes, strict=True):
            if outcome is AppendResult.DUPLICATE:
                result.duplicates += 1
            else:
                result.applied.append(r)
                new += 1
        return new

    def _store_one(self, record: Record, inactive: AbstractSet[bytes]) -> AppendResult:
        """Append one record; a twin of a held one goes by :meth:`RecordStore.append_twin`
        (the lower record ID holds the place on every device, the other is kept aside)."""
        try:
            return self.store.append_many([record], inactive)[0]
        except IntegrityError:
            outcome = self.store.append_twin(record, record.id not in inactive)
        if outcome is not AppendResult.DUPLICATE:
            h = record.header
            key = (h.author, "equivocation")
            if key not in self._logged and len(self._logged) < 1024:
                self._logged.add(key)
                log.warning("device %s signed two records with sequence number %d "
                            "(equivocation): every device keeps the one with the lower ID "
                            "(logged once)", h.author.hex()[:16], h.seq)
        return outcome

    def bootstrap(self, records: Sequence[Record]) -> ApplyResult:
        """Store the MEMBER and VAULT_KEY records handed over at pairing, by the same rule."""
        wanted = [r for r in records if r.header.kind in (Kind.MEMBER, Kind.VAULT_KEY)]
        result = self.apply(wanted)
        result.refused += len(records) - len(wanted)
        return result
