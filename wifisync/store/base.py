"""The store contract and the append rule shared by every store.

A store is an append-only log of verified records plus three derived views kept in
the same transaction as every append: the held (maximal) versions of each item, the
``seen`` vector (per origin, the highest ``n`` with every ``seq <= n`` held), and a
fingerprint of the set of held record IDs (their sum mod 2**256).
Stores do not check signatures or membership: the replica does, before appending.

Twins: an author that signs two records with one (origin, seq) equivocates. The store
holds the twin with the lowest record ID at that place and keeps the others *aside*
(:meth:`RecordStore.append_twin`): synced and counted in the fingerprint, never a version
of any item; a MEMBER record aside still counts for membership. Every device that holds
the same records therefore holds the same twin at each place (docs/SECURITY.md).
"""

from __future__ import annotations

import enum
import os
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import AbstractContextManager

from wifisync.errors import IntegrityError
from wifisync.model.records import Kind, Record
from wifisync.model.versions import maximal

FINGERPRINT_MODULUS = 1 << 256
STREAM_BATCH = 2048  # items per batch of stream_heads: ~10 MiB held at a time, few commits


class AppendResult(enum.Enum):
    """What appending one record did."""

    DUPLICATE = "duplicate"  # already held: nothing changed
    HEAD = "head"  # stored and now a held version of its item
    OBSOLETE = "obsolete"  # stored in the log, but a held version dominates it
    INACTIVE = "inactive"  # stored in the log, but not accepted (yet): never a held version
    TWIN = "twin"  # a lower twin holds its (origin, seq): kept aside, never a version


def fingerprint_add(fp: bytes, record_ids: Iterable[bytes]) -> bytes:
    """A set fingerprint with these record IDs added (their sum modulo 2^256)."""
    total = int.from_bytes(fp, "big") + sum(int.from_bytes(rid, "big") for rid in record_ids)
    return (total % FINGERPRINT_MODULUS).to_bytes(32, "big")


EMPTY_FINGERPRINT = bytes(32)
MEMBERSHIP_TOKEN = "membership_token"


HeldVersions = dict[bytes, list[tuple[bytes, Mapping[bytes, int]]]]  # item -> (ID, vector)


def _apply_rule(records: Sequence[Record], inactive: AbstractSet[bytes],
                held_seq: dict[tuple[bytes, int], bytes], held_ids: set[bytes],
                heads: HeldVersions) -> tuple[list[AppendResult], list[Record]]:
    """The multi-value-register rule over what a store holds, record by record in order.

    Updates ``held_seq``, ``held_ids`` and ``heads`` to the state after the batch and
    returns each record's result and the records to store (raises IntegrityError on a
    different record at a held or listed (origin, seq)).
    """
    results: list[AppendResult] = []
    new: list[Record] = []
    for r in records:
        rid, h = r.id, r.header
        if rid in held_ids:
            results.append(AppendResult.DUPLICATE)
            continue
        if held_seq.setdefault((h.author, h.seq), rid) != rid:
            raise IntegrityError("a different record with the same origin and seq is held")
        held_ids.add(rid)
        new.append(r)
        if rid in inactive:
            results.append(AppendResult.INACTIVE)
            continue
        current = heads.get(h.item)
        if not current:  # the item's first version: nothing to compare with
            heads[h.item] = [(rid, h.versions)]
            results.append(AppendResult.HEAD)
            continue
        keep, drop = maximal([v for _rid, v in current], h.versions)
        if keep:
            heads[h.item] = [x for i, x in enumerate(current) if i not in drop]
            heads[h.item].append((rid, h.versions))
        results.append(AppendResult.HEAD if keep else AppendResult.OBSOLETE)
    return results, new


class RecordStore(ABC):
    """What the vault, the sync core and the daemon need from a store."""

    # --- primitives each store implements -------------------------------------------------

    @abstractmethod
    def transaction(self, durable: bool | None = None) -> AbstractContextManager[None]:
        """Group reads and writes into one atomic unit; nested calls join the outer one.

        A durable transaction (the default) is on disk once it returns: a power cut keeps
        it. One opened with ``durable=False`` survives a crash of the process, but a power
        cut may undo it, with every later non-durable one and nothing before the last
        durable one. Only records fetched from peers, which the peers still hold, are
        stored that way. A nested call joins the outer transaction as it is, unless it
        asks for ``durable=True``: then the whole transaction is durable.
        """

    @abstractmethod
    def get_meta(self, key: str) -> bytes | None:
        """A value of the store's own key/value metadata."""

    @abstractmethod
    def set_meta(self, key: str, value: bytes) -> None:
        """Set a metadata value."""

    @abstractmethod
    def has_record(self, record_id: bytes) -> bool:
        """Whether a record with this ID is held."""

    @abstractmethod
    def get_record(self, record_id: bytes) -> Record | None:
        """A held record by ID."""

    @abstractmethod
    def has_seq(self, origin: bytes, seq: int) -> bool:
        """Whether the record ``(origin, seq)`` is held."""

    @abstractmethod
    def heads(self, item: bytes) -> list[Record]:
        """The held versions of one item, ordered by record ID."""

    @abstractmethod
    def heads_of_kind(self, kind: Kind) -> Iterator[tuple[bytes, list[Record]]]:
        """Every item of a kind with its held versions."""

    @abstractmethod
    def versions(self, item: bytes) -> list[Record]:
        """Every record ever held for an item (the log of its history), oldest first."""

    @abstractmethod
    def records_after(self, origin: bytes, seq: int, limit: int,
                      max_bytes: int | None = None) -> list[Record]:
        """Up to ``limit`` records of ``origin`` with sequence numbers above ``seq``, in order.

        With ``max_bytes``, reading stops once the records read reach that many bytes
        (at least one is returned): attachment chunks are 256 KiB each.
        """

    def encoded_after(self, origin: bytes, seq: int, limit: int,
                      max_bytes: int | None = None) -> list[tuple[int, bytes, bytes]]:
        """What :meth:`records_after` returns, as ``(seq, ID, bytes)`` of each record: what
        a sender forwards, without rebuilding the records (IntegrityError on bytes that no
        longer hash to their ID)."""
        return [(r.header.seq, r.id, r.encoded)
                for r in self.records_after(origin, seq, limit, max_bytes)]

    @abstractmethod
    def record_ids(self) -> Iterator[bytes]:
        """Every held record ID (twins kept aside not included), sorted."""

    @abstractmethod
    def synced_ids(self) -> Iterator[bytes]:
        """Every record ID the fingerprint sums, sorted: the held ones and the twins aside."""

    @abstractmethod
    def twin_records(self, kind: Kind | None = None) -> list[Record]:
        """The twins kept aside (of one kind, if given), by ID."""

    @abstractmethod
    def twins_at(self, origin: bytes, seq: int) -> list[Record]:
        """The twins kept aside at one (origin, seq), by ID."""

    @abstractmethod
    def seen(self) -> dict[bytes, int]:
        """Per origin, the highest ``n`` such that every record with ``seq <= n`` is held."""

    @abstractmethod
    def max_seq(self, origin: bytes) -> int:
        """Highest sequence number held for an origin (0 when none)."""

    @abstractmethod
    def origins(self) -> dict[bytes, int]:
        """Every origin with at least one held record, mapped to its highest held seq."""

    @abstractmethod
    def count_records(self) -> int:
        """Number of records held."""

    @abstractmethod
    def signature_marks(self, record_ids: Sequence[bytes]) -> dict[bytes, bytes]:
        """The stored signature marks (:mod:`wifisync.store.sigmarks`) of those records with one."""

    @abstractmethod
    def add_signature_marks(self, marks: Mapping[bytes, bytes]) -> None:
        """Store signature marks by record ID, replacing older ones (one transaction).

        Raises :class:`StoreError` when the store cannot be written.
        """

    @abstractmethod
    def signature_sets(self, record_ids: Sequence[bytes]) -> list[tuple[list[bytes], bytes]]:
        """The stored set marks (:mod:`wifisync.store.sigmarks`) covering any of those
        records, each with the IDs of every record it covers as the store holds them now."""

    @abstractmethod
    def add_signature_set(self, record_ids: Sequence[bytes], mark: bytes) -> bool:
        """Store one mark over records stored together (one run of the store's rows);
        returns False, storing nothing, when they are not. Raises :class:`StoreError`
        when the store cannot be written."""

    @abstractmethod
    def close(self) -> None:
        """Release the store."""

    @abstractmethod
    def _held_at(self, records: Sequence[Record]) -> dict[tuple[bytes, int], bytes]:
        """The IDs of held records by (origin, seq): at least those at the records' places."""

    @abstractmethod
    def _held_versions(self, items: Collection[bytes]) -> HeldVersions:
        """Per item (of those with any), its held versions as (record ID, version vector)."""

    @abstractmethod
    def _store_new(self, new: Sequence[Record], held: AbstractSet[bytes],
                   superseded: Sequence[tuple[bytes, bytes]]) -> None:
        """Insert new records, a held version where its ID is in ``held``; stop holding
        the (item, record ID) pairs of ``superseded``. Called inside a transaction."""

    @abstractmethod
    def _take_out(self, record: Record) -> None:
        """Remove a held record from the log, its item's versions, the inactive set and
        every index of it, and void the set mark over its run (it is about to be kept
        aside); ``seen`` and the fingerprint are the caller's. Called inside a transaction."""

    @abstractmethod
    def _put_aside(self, record: Record) -> None:
        """Keep a twin aside. Called inside a transaction."""

    @abstractmethod
    def _set_seen(self, origin: bytes, seq: int) -> None:
        """Raise the seen counter of an origin."""

    @abstractmethod
    def inactive_records(self, items: Collection[bytes] | None = None) -> list[Record]:
        """Held records not accepted now (of these items, if given), by ID."""

    @abstractmethod
    def count_inactive(self) -> int:
        """How many held records are marked inactive."""

    @abstractmethod
    def is_inactive(self, record_id: bytes) -> bool:
        """Whether a held record is marked inactive."""

    @abstractmethod
    def _set_inactive(self, records: Sequence[Record], inactive: bool) -> None:
        """Set or clear the inactive mark of held records; called inside a transaction."""

    # --- shared logic -----------------------------------------------------------------------

    def membership_token(self) -> bytes:
        """Changes whenever a MEMBER record is stored: a key for caching membership."""
        return self.get_meta(MEMBERSHIP_TOKEN) or b""

    def _membership_changed(self) -> None:
        # Random rather than a counter: a rolled-back write must not leave a token that a
        # different later write could repeat.
        self.set_meta(MEMBERSHIP_TOKEN, os.urandom(16))

    def fingerprint(self) -> bytes:
        """32-byte fingerprint of the set of held record IDs."""
        return self.get_meta("fingerprint") or EMPTY_FINGERPRINT

    def held_items(self, kind: Kind) -> list[bytes]:
        """Every item of a kind that has a held version, without reading its records."""
        return [item for item, _held in self.heads_of_kind(kind)]

    def items_with_concurrent_versions(self, kind: Kind) -> list[bytes]:
        """Items of a kind that hold more than one version: what a merge has to settle."""
        return [item for item, held in self.heads_of_kind(kind) if len(held) > 1]

    def held_items_with_prefix(self, kind: Kind, prefix: str) -> list[bytes]:
        """Held items of a kind whose ID, in hex, starts with ``prefix``."""
        return [item for item in self.held_items(kind) if item.hex().startswith(prefix)]

    def stream_heads(self, kind: Kind, batch: int = STREAM_BATCH
                     ) -> Iterator[list[tuple[bytes, list[Record] | None]]]:
        """Held items of a kind with their heads, ``batch`` items at a time; ``None`` for an
        item whose records are corrupt (a store on disk streams them in bounded memory)."""
        groups: list[tuple[bytes, list[Record] | None]] = []
        for item in self.held_items(kind):
            try:
                groups.append((item, self.heads(item)))
            except IntegrityError:
                groups.append((item, None))
            if len(groups) >= batch:
                yield groups
                groups = []
        if groups:
            yield groups

    def next_seq(self, origin: bytes) -> int:
        """The sequence number this origin's next record gets (use inside a transaction)."""
        return self.max_seq(origin) + 1

    def append(self, record: Record, active: bool = True) -> AppendResult:
        """Add a verified record, applying the multi-value-register rule to its item.

        An inactive record is kept in the log only: it takes no part in the item's held
        versions until :meth:`set_active` accepts it.
        """
        return self.append_many([record], frozenset() if active else {record.id})[0]

    def append_many(self, records: Sequence[Record],
                    inactive: AbstractSet[bytes] = frozenset()) -> list[AppendResult]:
        """Append records in order in one transaction: the one home of the append rule.

        For each record: a held record is a DUPLICATE; one whose IDs are in ``inactive``
        is stored INACTIVE (log only); otherwise it is stored, and becomes a HEAD (dropping
        the held versions of its item it dominates) unless a held version dominates or
        equals it (OBSOLETE). Then the fingerprint, the membership token and ``seen``
        follow. Everything is looked up first and written at once (sync applies batches of
        thousands), so a store implements a few batch primitives, never the rule. Raises
        :class:`IntegrityError`, having written nothing, when a record conflicts with a
        different held (or earlier listed) record of the same origin and seq.
        """
        with self.transaction():
            if not records:
                return []
            held_seq = self._held_at(records)
            # A record's ID hashes bytes that include its origin and seq, so a held record
            # with the same ID sits at the same (origin, seq): that lookup finds duplicates.
            held_ids = set(held_seq.values())
            heads = self._held_versions({r.header.item for r in records
                                         if r.id not in held_ids})
            before = {rid: item for item, versions in heads.items() for rid, _v in versions}
            results, new = _apply_rule(records, inactive, held_seq, held_ids, heads)
            held = {rid for versions in heads.values() for rid, _v in versions}
            self._store_new(new, held, [(item, rid) for rid, item in before.items()
                                        if rid not in held])
            if inactive:
                self._set_inactive([r for r in new if r.id in inactive], True)
            self.set_meta("fingerprint", fingerprint_add(self.fingerprint(), (r.id for r in new)))
            if any(r.header.kind == Kind.MEMBER for r in new):
                self._membership_changed()
            self._raise_seen({r.header.author for r in new}, held_seq)
            return results

    def append_twin(self, record: Record, active: bool = True) -> AppendResult:
        """Append a record whose (origin, seq) may hold a different record: its twin.

        The twin with the lower record ID holds the place: a lower ``record`` takes it (the
        held one is kept aside and its item's versions are recomputed from the log, so the
        result is the one the lower twin alone would have made) and its result is that of
        :meth:`append`; a higher one is kept aside (TWIN). A record already held or aside is
        a DUPLICATE. Slower than :meth:`append_many`: the sync core calls it only for
        records that made a batch raise :class:`IntegrityError`.
        """
        with self.transaction():
            if self.has_record(record.id):
                return AppendResult.DUPLICATE
            h = record.header
            held_id = self._held_at([record]).get((h.author, h.seq))
            if held_id is None:
                return self.append(record, active)
            held = self.get_record(held_id)
            assert held is not None, "a held (origin, seq) names a held record"
            if held_id < record.id:
                self._put_aside(record)
                self.set_meta("fingerprint", fingerprint_add(self.fingerprint(), [record.id]))
                result = AppendResult.TWIN
            else:
                self._take_out(held)
                self._put_aside(held)
                self._rebuild_heads(held.header.item)
                result = self.append(record, active)
            if Kind.MEMBER in (h.kind, held.header.kind):
                self._membership_changed()
            return result

    def _raise_seen(self, origins: AbstractSet[bytes],
                    held_seq: Mapping[tuple[bytes, int], bytes]) -> None:
        """Raise ``seen`` of each origin over every run of held sequence numbers."""
        seen = self.seen()
        for origin in origins:
            start = n = seen.get(origin, 0)
            while (origin, n + 1) in held_seq or self.has_seq(origin, n + 1):
                n += 1
            if n > start:
                self._set_seen(origin, n)

    def set_active(self, records: Sequence[Record], active: bool) -> int:
        """Mark held records active or inactive and recompute their items' held versions.

        Nothing is deleted: an inactive record stays in the log (and in sync) and comes
        back as soon as it is marked active again. Returns how many marks changed.
        """
        with self.transaction():
            changed = [r for r in records if self.is_inactive(r.id) == active]
            if changed:
                self._set_inactive(changed, not active)
                for item in sorted({r.header.item for r in changed}):
                    self._rebuild_heads(item)
            return len(changed)

    def _rebuild_heads(self, item: bytes) -> None:
        """Recompute the held versions of an item from its log (active records only)."""
        held: list[Record] = []
        for r in self.versions(item):
            if self.is_inactive(r.id):
                continue
            keep, drop = maximal([x.header.versions for x in held], r.header.versions)
            if keep:
                held = [x for i, x in enumerate(held) if i not in drop] + [r]
        self._replace_heads(item, [r.id for r in held])

    @abstractmethod
    def _replace_heads(self, item: bytes, record_ids: list[bytes]) -> None:
        """Set the held versions of an item."""
