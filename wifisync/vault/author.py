"""Writing this device's own records: next sequence number, version vector, clock, signature."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from wifisync.errors import IntegrityError, UsageError
from wifisync.model.clock import HybridClock, hlc_pack
from wifisync.model.identity import DeviceIdentity
from wifisync.model.membership import MembershipView, view_of
from wifisync.model.records import Kind, Record, RecordHeader, sign_records
from wifisync.model.versions import join
from wifisync.store import AppendResult, RecordStore, sigmarks
from wifisync.wallclock import wall_ms

BodyMaker = Callable[[RecordHeader, list[Record]], bytes]


class Write(NamedTuple):
    """One new version to write: its item, kind, body maker and whether it deletes."""

    item: bytes
    kind: Kind
    make_body: BodyMaker
    deleted: bool = False


@dataclass
class Author:
    """Signs new records as this device, each dominating every held version of its item."""

    store: RecordStore
    identity: DeviceIdentity
    vault_id: bytes
    clock: HybridClock = field(default_factory=HybridClock)
    now_ms: Callable[[], int] = wall_ms
    _mark_key: bytes = field(init=False, repr=False)
    _view: MembershipView | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._mark_key = sigmarks.mark_key(self.identity)

    def write(self, item: bytes, kind: Kind, make_body: BodyMaker, deleted: bool = False) -> Record:
        """Write one record in one transaction; ``make_body`` sees header and held versions."""
        return self.write_many([Write(item, kind, make_body, deleted)])[0]

    def write_many(self, writes: Sequence[Write]) -> list[Record]:
        """Write one new version of each of several items in one transaction, signed
        together (:func:`sign_records`: one signature per tree of records)."""
        from wifisync.sync.acceptance import MAX_FUTURE_MS  # the sync package: writers only

        if len({w.item for w in writes}) != len(writes):
            raise ValueError("write_many writes each item once")
        me = self.identity.device_id
        with self.store.transaction(durable=True):  # even nested: a seq is never taken twice
            parts: list[tuple[RecordHeader, bytes]] = []
            first = self.store.next_seq(me)
            for i, w in enumerate(writes):
                held = self.store.heads(w.item)
                now = self.now_ms()
                for r in held:
                    # Never past a day ahead of our clock, whatever a peer wrote.
                    self.clock.observe(min(r.header.time, hlc_pack(now + MAX_FUTURE_MS, 0)))
                seq = first + i
                self._check_may_write(seq, w.kind)
                versions = join(r.header.versions for r in held)
                versions[me] = seq
                header = RecordHeader(
                    vault=self.vault_id, item=w.item, kind=w.kind, author=me, seq=seq,
                    versions=versions, time=self.clock.now(now), deleted=w.deleted,
                )
                parts.append((header, w.make_body(header, held)))
            records = sign_records(self.identity, parts)
            outcomes = self.store.append_many(records)
            if any(outcome is not AppendResult.HEAD for outcome in outcomes) or any(
                    r.id not in {h.id for h in self.store.heads(r.header.item)} for r in records):
                raise IntegrityError(
                    "a new version did not become its item's current one; nothing was "
                    "written (run `wifisync verify`)")
            # Signed here, so valid: reading them back need not verify them again.
            self.store.add_signature_marks({r.id: sigmarks.mark(self._mark_key, r.id)
                                            for r in records})
        return records

    def _check_may_write(self, seq: int, kind: Kind) -> None:
        """Refuse to sign what no other device would accept from this one."""
        if self._view is None or kind == Kind.MEMBER:
            # Computed once per writer (one CLI command, one import); a MEMBER write may
            # change it, and is rare.
            self._view = view_of(self.store)
        view = self._view
        if view.root is None:
            return  # the vault's first records, written by its creator
        if not view.counts(self.identity.device_id, seq, kind):
            me = view.members.get(self.identity.device_id)
            why = ("this device is not a member of the vault" if me is None
                   else "this device was revoked" if me.revoked
                   else "this device's membership is not in force (re-pair it with "
                        "`wifisync join`)" if not me.admitted
                   else "this device is a relay: a member holding the key must grant it "
                        "that role (`wifisync grant`)")
            raise UsageError(f"cannot write: {why}")
