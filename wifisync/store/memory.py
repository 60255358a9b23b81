"""An in-memory store with the same contract as the SQLite one (tests and benchmarks)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from typing import Any

from wifisync.model.records import Kind, Record
from wifisync.store.base import RecordStore


class MemoryStore(RecordStore):
    """Dicts instead of tables; a failed transaction replays an undo log of its changes."""

    def __init__(self) -> None:
        self._meta: dict[str, bytes] = {}
        self._records: dict[bytes, Record] = {}
        self._by_seq: dict[tuple[bytes, int], bytes] = {}
        self._by_item: dict[bytes, list[bytes]] = {}
        self._heads: dict[bytes, set[bytes]] = {}
        self._seen: dict[bytes, int] = {}
        self._max: dict[bytes, int] = {}
        self._marks: dict[bytes, bytes] = {}
        self._sets: dict[bytes, tuple[tuple[bytes, ...], bytes]] = {}  # record ID -> its set
        self._inactive: set[bytes] = set()
        self._twins: dict[bytes, Record] = {}  # twins kept aside, by ID
        self._depth = 0
        self._undo: list[Callable[[], None]] = []

    @contextmanager
    def transaction(self, durable: bool | None = None) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._undo = []
        self._depth = 1
        try:
            yield
        except BaseException:
            for undo in reversed(self._undo):
                undo()
            raise
        finally:
            self._depth = 0
            self._undo = []

    def _on_rollback(self, undo: Callable[[], None]) -> None:
        """Remember how to reverse one change if the open transaction fails."""
        if self._depth:
            self._undo.append(undo)

    def get_meta(self, key: str) -> bytes | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: bytes) -> None:
        self._on_rollback(_restore(self._meta, key))
        self._meta[key] = value

    def has_record(self, record_id: bytes) -> bool:
        return record_id in self._records or record_id in self._twins

    def get_record(self, record_id: bytes) -> Record | None:
        held = self._records.get(record_id)
        return held if held is not None else self._twins.get(record_id)

    def has_seq(self, origin: bytes, seq: int) -> bool:
        return (origin, seq) in self._by_seq

    def heads(self, item: bytes) -> list[Record]:
        return [self._records[i] for i in sorted(self._heads.get(item, ()))]

    def heads_of_kind(self, kind: Kind) -> Iterator[tuple[bytes, list[Record]]]:
        """As the SQLite store: the held versions of that kind (a member could sign a
        version of another kind for the same item ID; it hides none of them)."""
        for item in sorted(self._heads):
            held = [r for r in self.heads(item) if r.header.kind == kind]
            if held:
                yield item, held

    def versions(self, item: bytes) -> list[Record]:
        return [self._records[i] for i in self._by_item.get(item, [])]

    def records_after(self, origin: bytes, seq: int, limit: int,
                      max_bytes: int | None = None) -> list[Record]:
        out: list[Record] = []
        top = self.max_seq(origin)
        n = seq + 1
        size = 0
        while n <= top and len(out) < limit and (max_bytes is None or not out
                                                  or size < max_bytes):
            rid = self._by_seq.get((origin, n))
            if rid is not None:
                out.append(self._records[rid])
                size += len(self._records[rid].encoded)
            n += 1
        return out

    def record_ids(self) -> Iterator[bytes]:
        yield from sorted(self._records)

    def synced_ids(self) -> Iterator[bytes]:
        yield from sorted([*self._records, *self._twins])

    def twin_records(self, kind: Kind | None = None) -> list[Record]:
        return [r for _rid, r in sorted(self._twins.items())
                if kind is None or r.header.kind == kind]

    def twins_at(self, origin: bytes, seq: int) -> list[Record]:
        return [r for r in self.twin_records()
                if (r.header.author, r.header.seq) == (origin, seq)]

    def seen(self) -> dict[bytes, int]:
        return dict(self._seen)

    def max_seq(self, origin: bytes) -> int:
        return self._max.get(origin, 0)

    def origins(self) -> dict[bytes, int]:
        return {o: n for o, n in self._max.items() if n > 0}

    def count_records(self) -> int:
        return len(self._records)

    def signature_marks(self, record_ids: Sequence[bytes]) -> dict[bytes, bytes]:
        return {rid: self._marks[rid] for rid in record_ids if rid in self._marks}

    def add_signature_marks(self, marks: Mapping[bytes, bytes]) -> None:
        with self.transaction():
            for rid, value in marks.items():
                self._on_rollback(_restore(self._marks, rid))
                self._marks[rid] = value

    def signature_sets(self, record_ids: Sequence[bytes]) -> list[tuple[list[bytes], bytes]]:
        found = {self._sets[rid] for rid in record_ids if rid in self._sets}
        return [(list(ids), mark) for ids, mark in found]

    def add_signature_set(self, record_ids: Sequence[bytes], mark: bytes) -> bool:
        if not record_ids or any(rid not in self._records for rid in record_ids):
            return False
        entry = (tuple(record_ids), mark)
        with self.transaction():
            for rid in record_ids:
                self._on_rollback(_restore(self._sets, rid))
                self._sets[rid] = entry
        return True

    def close(self) -> None:
        """Nothing to release."""

    def _held_at(self, records: Sequence[Record]) -> dict[tuple[bytes, int], bytes]:
        places = ((r.header.author, r.header.seq) for r in records)
        return {key: self._by_seq[key] for key in places if key in self._by_seq}

    def _held_versions(self, items: Collection[bytes]
                       ) -> dict[bytes, list[tuple[bytes, Mapping[bytes, int]]]]:
        return {item: [(r.id, r.header.versions) for r in held]
                for item in items if (held := self.heads(item))}

    def _store_new(self, new: Sequence[Record], held: AbstractSet[bytes],
                   superseded: Sequence[tuple[bytes, bytes]]) -> None:
        for record in new:
            h = record.header
            self._on_rollback(self._uninsert_undo(record))
            self._records[record.id] = record
            self._by_seq[(h.author, h.seq)] = record.id
            self._max[h.author] = max(self._max.get(h.author, 0), h.seq)
            self._by_item.setdefault(h.item, []).append(record.id)
            if record.id in held:
                self._heads.setdefault(h.item, set()).add(record.id)
        for item, rid in superseded:
            self._on_rollback(_restore(self._heads, item, set(self._heads[item])))
            self._heads[item].discard(rid)

    def _uninsert_undo(self, record: Record) -> Callable[[], None]:
        h = record.header
        restore_max = _restore(self._max, h.author)
        held = self._heads.get(h.item)
        restore_heads = _restore(self._heads, h.item, _MISSING if held is None else set(held))

        def undo() -> None:
            del self._records[record.id]
            del self._by_seq[(h.author, h.seq)]
            log = self._by_item[h.item]
            log.pop()
            if not log:
                del self._by_item[h.item]
            restore_max()
            restore_heads()

        return undo

    def _take_out(self, record: Record) -> None:
        h, rid = record.header, record.id
        self._on_rollback(_restore(self._records, rid))
        del self._records[rid]
        self._on_rollback(_restore(self._by_seq, (h.author, h.seq)))
        del self._by_seq[(h.author, h.seq)]
        self._on_rollback(_restore(self._by_item, h.item, list(self._by_item[h.item])))
        self._by_item[h.item] = [x for x in self._by_item[h.item] if x != rid]
        self._on_rollback(_restore(self._heads, h.item, set(self._heads.get(h.item, ()))))
        self._heads.get(h.item, set()).discard(rid)
        self._set_inactive([record], False)
        self._on_rollback(_restore(self._marks, rid))
        self._marks.pop(rid, None)
        if rid in self._sets:  # the set mark over its run is void: drop it for the others
            for other in self._sets[rid][0]:
                self._on_rollback(_restore(self._sets, other))
                self._sets.pop(other, None)

    def _put_aside(self, record: Record) -> None:
        self._on_rollback(_restore(self._twins, record.id))
        self._twins[record.id] = record

    def _set_seen(self, origin: bytes, seq: int) -> None:
        self._on_rollback(_restore(self._seen, origin))
        self._seen[origin] = seq

    def inactive_records(self, items: Collection[bytes] | None = None) -> list[Record]:
        out = [self._records[rid] for rid in sorted(self._inactive)]
        return out if items is None else [r for r in out if r.header.item in items]

    def count_inactive(self) -> int:
        return len(self._inactive)

    def is_inactive(self, record_id: bytes) -> bool:
        return record_id in self._inactive

    def _set_inactive(self, records: Sequence[Record], inactive: bool) -> None:
        for r in records:
            if (r.id in self._inactive) != inactive:
                self._on_rollback(self._toggle_undo(r.id))
                self._inactive ^= {r.id}

    def _toggle_undo(self, record_id: bytes) -> Callable[[], None]:
        def undo() -> None:
            self._inactive ^= {record_id}

        return undo

    def _replace_heads(self, item: bytes, record_ids: list[bytes]) -> None:
        self._on_rollback(_restore(self._heads, item))
        self._heads[item] = set(record_ids)


_MISSING = object()


def _restore(table: dict[Any, Any], key: Any, value: Any = _MISSING) -> Callable[[], None]:
    """An undo step that puts ``table[key]`` back as it is now (or as ``value``)."""
    old = table.get(key, _MISSING) if value is _MISSING else value

    def undo() -> None:
        if old is _MISSING:
            table.pop(key, None)
        else:
            table[key] = old

    return undo
