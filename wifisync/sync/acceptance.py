"""The one accept rule: which records a device stores, and which of those count.

Every path that takes records in (sync sessions, the pairing hand-over, ``restore``) and
every read of the vault asks here. A record is

- **refused** (not stored, counted): wrong vault, malformed body for its kind, an author
  no chain of MEMBER records from the vault's creator names, a bad signature, or a clock
  time more than ``MAX_FUTURE_MS`` ahead of this device's clock (it is sent again later);
- **inactive** (stored, synced, but no part of any item's versions): its author does not
  count at that sequence number (not admitted, revoked before it, or a relay writing an
  item, tombstone or wrapped key), or its version vector claims a version of another
  device that this store does not hold for that item (it waits; at most ``MAX_WAITING``
  such records are kept, later ones are refused until some arrive);
- **active** otherwise.

Inactive and active are a function of the records held, so every device that holds the
same records agrees; a record becomes active or inactive again whenever what it depends
on changes, and is never deleted for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet

from wifisync.errors import IntegrityError
from wifisync.model.chunks import chunk_record_ok
from wifisync.model.clock import hlc_wall_ms
from wifisync.model.membership import MembershipView, view_of
from wifisync.model.records import (
    VAULT_KEY_ITEM,
    Kind,
    Membership,
    Record,
    WrappedVaultKey,
    member_item_id,
)
from wifisync.store import RecordStore

log = logging.getLogger(__name__)

MAX_FUTURE_MS = 24 * 3600 * 1000  # a record's clock may run at most a day ahead of ours
MAX_WAITING = 4096  # records kept inactive until the versions they claim arrive


def held_when_revoked_key(device: bytes) -> str:
    """The store metadata key under which :meth:`Acceptance.note_learned` keeps its number."""
    return f"held-when-revoked:{device.hex()}"


def body_ok(record: Record) -> bool:
    """Kind-specific structure anyone can check without the vault key."""
    h = record.header
    try:
        if h.kind == Kind.MEMBER:
            return h.item == member_item_id(Membership.decode(record.body).device_id)
        if h.kind == Kind.VAULT_KEY:
            WrappedVaultKey.decode(record.body)
            return h.item == VAULT_KEY_ITEM
        if h.kind == Kind.CHUNK:
            return chunk_record_ok(record) and h.item != VAULT_KEY_ITEM
    except (IntegrityError, ValueError):
        return False
    return h.item != VAULT_KEY_ITEM


class Acceptance:
    """The accept rule over one store, with the membership its records make now."""

    def __init__(self, store: RecordStore, vault_id: bytes,
                 now_ms: Callable[[], int]) -> None:
        self.store = store
        self.vault_id = vault_id
        self.now_ms = now_ms
        self.view: MembershipView = view_of(store)

    def refresh(self, view: MembershipView | None = None) -> MembershipView:
        """Take the membership after MEMBER records were stored (``view`` when the caller
        computed it already, else recomputed from the store); returns the old view."""
        old, self.view = self.view, view if view is not None else view_of(self.store)
        return old

    # --- entry ----------------------------------------------------------------------------

    def refusals(self, records: Iterable[Record]) -> list[tuple[str | None, bytes | None]]:
        """For each record, why it may not be stored at all (signature aside; None: it may)
        and the key that must have signed it (None: unknown author). The clock is read
        once: a sync batch is a thousand records."""
        latest = self.now_ms() + MAX_FUTURE_MS
        vault_id, key_of = self.vault_id, self.view.key_of
        out: list[tuple[str | None, bytes | None]] = []
        for record in records:
            h = record.header
            key = key_of(h.author)
            if h.vault != vault_id:
                out.append(("another vault", key))
            elif not body_ok(record):
                out.append(("malformed body", key))
            elif key is None:
                out.append(("unknown author", key))
            elif hlc_wall_ms(h.time) > latest:
                out.append(("clock time too far ahead", key))
            else:
                out.append((None, key))
        return out

    def key_of(self, author: bytes) -> bytes | None:
        """The key that must have signed a record of ``author``."""
        return self.view.key_of(author)

    # --- activity ---------------------------------------------------------------------------

    def author_counts(self, record: Record) -> bool:
        """Whether the membership rule lets this record's author write it."""
        h = record.header
        return self.view.counts(h.author, h.seq, h.kind)

    def claims_held(self, record: Record,
                    batch: AbstractSet[tuple[bytes, int, bytes]] | None = None) -> bool:
        """Whether every version the record claims of another device is held for its item.

        ``batch`` holds (origin, seq, item) of records being stored with this one. Where
        the author of a claimed version equivocated, a twin kept aside counts as much as
        the one held: which twin holds the place never decides whether a claim holds
        (docs/SECURITY.md, "Equivocation").
        """
        h = record.header
        for device, n in h.versions.items():
            if device == h.author or (batch is not None and (device, n, h.item) in batch):
                continue
            held = self.store.records_after(device, n - 1, 1)
            if not held or held[0].header.seq != n:
                return False
            if held[0].header.item != h.item and not any(
                    t.header.item == h.item for t in self.store.twins_at(device, n)):
                return False
        return True

    def active(self, record: Record,
               batch: AbstractSet[tuple[bytes, int, bytes]] | None = None) -> bool:
        """Whether a stored (or about to be stored) record counts."""
        if record.header.kind == Kind.MEMBER:
            return True  # membership reads every MEMBER record; the rule decides their effect
        return self.author_counts(record) and self.claims_held(record, batch)

    def accepted_on_read(self, record: Record) -> bool:
        """The read path's check of a held version: its author counts at its seq."""
        return self.author_counts(record)

    # --- re-judging after a change ------------------------------------------------------------

    def note_learned(self, before: MembershipView) -> None:
        """Remember, for each device revoked since ``before``, how far this store held its
        records when the news arrived: what an acknowledgement may vouch for, and no more
        (records of it that arrive later, even relayed by members, are never vouched for)."""
        for device, m in self.view.members.items():
            old = before.members.get(device)
            key = held_when_revoked_key(device)
            if m.revoked and (old is None or not old.revoked) \
                    and self.store.get_meta(key) is None:
                self.store.set_meta(key, str(self.store.max_seq(device)).encode())

    def set_activity(self, records: list[Record]) -> None:
        """Mark each record active or inactive as the rule says now."""
        on = [r for r in records if self.active(r)]
        off = [r for r in records if not self.active(r)]
        self.store.set_active(on, True)
        self.store.set_active(off, False)

    def rejudge(self, before: MembershipView) -> set[bytes]:
        """After MEMBER records were stored and :meth:`refresh` ran: re-judge the records
        of every device whose standing changed since ``before``, and every inactive record;
        returns the devices no longer current."""
        after = self.view
        gone: set[bytes] = set()
        for device in sorted(set(before.members) | set(after.members)):
            old, new = before.members.get(device), after.members.get(device)
            if old == new:
                continue
            cuts = [m.cut for m in (old, new) if m is not None and m.cut is not None]
            same_standing = old is not None and new is not None \
                and old.admitted == new.admitted and old.role == new.role
            lowest = min(cuts) if same_standing and cuts else 0
            self.set_activity(self.store.records_after(device, lowest, 1 << 62))
            if new is not None and not new.current and (old is None or old.current):
                gone.add(device)
                log.info("device %s is no longer a current member (%s)", device.hex()[:16],
                         "revoked" if new.revoked else "not admitted")
        self.set_activity(self.store.inactive_records())
        return gone
