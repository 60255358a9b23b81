"""An in-memory store with the same contract as the SQLite one (tests and benchmarks)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

from ..records import Kind, Record
from .base import RecordStore


class MemoryStore(RecordStore):
    """Dicts instead of tables; a failed transaction restores the state it started from."""

    def __init__(self) -> None:
        self._meta: dict[str, bytes] = {}
        self._records: dict[bytes, Record] = {}
        self._by_seq: dict[tuple[bytes, int], bytes] = {}
        self._by_item: dict[bytes, list[bytes]] = {}
        self._heads: dict[bytes, set[bytes]] = {}
        self._seen: dict[bytes, int] = {}
        self._max: dict[bytes, int] = {}
        self._depth = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        saved = copy.copy(self.__dict__)
        saved = {k: copy.copy(v) for k, v in saved.items()}
        saved["_by_item"] = {k: list(v) for k, v in self._by_item.items()}
        saved["_heads"] = {k: set(v) for k, v in self._heads.items()}
        self._depth = 1
        try:
            yield
        except BaseException:
            self.__dict__.update(saved)
            self._depth = 0
            raise
        self._depth = 0

    def get_meta(self, key: str) -> bytes | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: bytes) -> None:
        self._meta[key] = value

    def has_record(self, record_id: bytes) -> bool:
        return record_id in self._records

    def get_record(self, record_id: bytes) -> Record | None:
        return self._records.get(record_id)

    def has_seq(self, origin: bytes, seq: int) -> bool:
        return (origin, seq) in self._by_seq

    def heads(self, item: bytes) -> list[Record]:
        return [self._records[i] for i in sorted(self._heads.get(item, ()))]

    def heads_of_kind(self, kind: Kind) -> Iterator[tuple[bytes, list[Record]]]:
        for item in sorted(self._heads):
            held = self.heads(item)
            if held and held[0].header.kind == kind:
                yield item, held

    def versions(self, item: bytes) -> list[Record]:
        return [self._records[i] for i in self._by_item.get(item, [])]

    def records_after(self, origin: bytes, seq: int, limit: int) -> list[Record]:
        out: list[Record] = []
        top = self.max_seq(origin)
        n = seq + 1
        while n <= top and len(out) < limit:
            rid = self._by_seq.get((origin, n))
            if rid is not None:
                out.append(self._records[rid])
            n += 1
        return out

    def record_ids(self) -> Iterator[bytes]:
        yield from sorted(self._records)

    def seen(self) -> dict[bytes, int]:
        return dict(self._seen)

    def max_seq(self, origin: bytes) -> int:
        return self._max.get(origin, 0)

    def count_records(self) -> int:
        return len(self._records)

    def close(self) -> None:
        """Nothing to release."""

    def _insert(self, record: Record, is_head: bool, dropped: list[bytes]) -> None:
        h = record.header
        self._records[record.id] = record
        self._by_seq[(h.author, h.seq)] = record.id
        self._max[h.author] = max(self._max.get(h.author, 0), h.seq)
        self._by_item.setdefault(h.item, []).append(record.id)
        if is_head:
            held = self._heads.setdefault(h.item, set())
            held.difference_update(dropped)
            held.add(record.id)

    def _set_seen(self, origin: bytes, seq: int) -> None:
        self._seen[origin] = seq

    def _delete_records(self, records: list[Record]) -> None:
        for r in records:
            h = r.header
            del self._records[r.id]
            del self._by_seq[(h.author, h.seq)]
            self._by_item[h.item].remove(r.id)
            self._heads.get(h.item, set()).discard(r.id)
            self._max[h.author] = max(
                (s for (o, s) in self._by_seq if o == h.author), default=0)

    def _replace_heads(self, item: bytes, record_ids: list[bytes]) -> None:
        self._heads[item] = set(record_ids)
