"""Writing this device's own records: next sequence number, version vector, clock, signature."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from wifisync.errors import IntegrityError, UsageError
from wifisync.model.clock import HybridClock, hlc_pack
from wifisync.model.identity import DeviceIdentity
from wifisync.model.membership import MembershipView, view_of
from wifisync.model.records import Kind, Record, RecordHeader, sign_record
from wifisync.model.versions import join
from wifisync.store import AppendResult, RecordStore, sigmarks
from wifisync.wallclock import wall_ms

BodyMaker = Callable[[RecordHeader, list[Record]], bytes]


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
        from wifisync.sync.acceptance import MAX_FUTURE_MS  # the sync package: writers only

        me = self.identity.device_id
        with self.store.transaction(durable=True):  # even nested: a seq is never taken twice
            held = self.store.heads(item)
            now = self.now_ms()
            for r in held:
                # Never past a day ahead of our clock, whatever a peer wrote.
                self.clock.observe(min(r.header.time, hlc_pack(now + MAX_FUTURE_MS, 0)))
            seq = self.store.next_seq(me)
            self._check_may_write(seq, kind)
            versions = join(r.header.versions for r in held)
            versions[me] = seq
            header = RecordHeader(
                vault=self.vault_id, item=item, kind=kind, author=me, seq=seq,
                versions=versions, time=self.clock.now(now), deleted=deleted,
            )
            record = sign_record(self.identity, header, make_body(header, held))
            if self.store.append(record) is not AppendResult.HEAD \
                    or record.id not in {r.id for r in self.store.heads(item)}:
                raise IntegrityError(
                    f"the new version of item {item.hex()} did not become its current one; "
                    "nothing was written (run `wifisync verify`)")
            # Signed here, so valid: reading it back need not verify it again.
            self.store.add_signature_marks({record.id: sigmarks.mark(self._mark_key, record.id)})
        return record

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
