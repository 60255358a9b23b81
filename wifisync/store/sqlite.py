"""The on-disk store: one SQLite file in WAL mode, every write in one transaction."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import IntegrityError, StoreError
from ..records import Kind, Record
from ..versions import maximal
from .base import AppendResult, RecordStore, fingerprint_add

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 60_000
_IN_CHUNK = 500  # keys per IN (...) list, well under SQLite's variable limit

# Each entry migrates from version i to i+1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE records (
        n INTEGER PRIMARY KEY,
        id BLOB NOT NULL UNIQUE,
        origin BLOB NOT NULL,
        seq INTEGER NOT NULL,
        item BLOB NOT NULL,
        kind INTEGER NOT NULL,
        data BLOB NOT NULL,
        UNIQUE (origin, seq)
    );
    CREATE INDEX records_item ON records (item, n);
    CREATE TABLE heads (
        item BLOB NOT NULL,
        id BLOB NOT NULL,
        kind INTEGER NOT NULL,
        PRIMARY KEY (item, id)
    );
    CREATE INDEX heads_kind ON heads (kind, item);
    CREATE TABLE seen (origin BLOB PRIMARY KEY, seq INTEGER NOT NULL);
    """,
]


def _load(record_id: bytes, data: bytes) -> Record:
    """Rebuild a stored record, refusing one whose bytes no longer hash to its ID."""
    try:
        record = Record.decode_trusted(data)
    except Exception as exc:
        raise IntegrityError(f"record {bytes(record_id).hex()[:16]} in the store is corrupt"
                             ) from exc
    if record.id != record_id:
        raise IntegrityError(f"record {bytes(record_id).hex()[:16]} in the store was altered")
    return record


class SqliteStore(RecordStore):
    """Records in SQLite; safe to share between the CLI and the daemon at the same time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from exc
        if mode != "wal":
            raise StoreError(f"{path}: cannot switch the store to WAL mode")
        self._lock = threading.RLock()
        self._depth = 0
        self._migrate()

    def _migrate(self) -> None:
        try:
            with self.transaction():
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path}: store schema {version} is newer than this wifisync "
                        f"understands ({SCHEMA_VERSION}); upgrade wifisync"
                    )
                for target in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS[target].split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {target + 1}")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a wifisync store: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE so concurrent writers queue instead of failing; nested calls join."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._db.execute("ROLLBACK")
                raise
            self._depth = 0
            self._db.execute("COMMIT")

    def _one(self, sql: str, *args: object) -> tuple[object, ...] | None:
        row: tuple[object, ...] | None = self._db.execute(sql, args).fetchone()
        return row

    def get_meta(self, key: str) -> bytes | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", key)
        return None if row is None else bytes(row[0])  # type: ignore[arg-type]

    def set_meta(self, key: str, value: bytes) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def has_record(self, record_id: bytes) -> bool:
        return self._one("SELECT 1 FROM records WHERE id = ?", record_id) is not None

    def get_record(self, record_id: bytes) -> Record | None:
        row = self._one("SELECT id, data FROM records WHERE id = ?", record_id)
        return None if row is None else _load(row[0], row[1])  # type: ignore[arg-type]

    def has_seq(self, origin: bytes, seq: int) -> bool:
        return self._one(
            "SELECT 1 FROM records WHERE origin = ? AND seq = ?", origin, seq) is not None

    def heads(self, item: bytes) -> list[Record]:
        rows = self._db.execute(
            "SELECT r.id, r.data FROM heads h JOIN records r ON r.id = h.id "
            "WHERE h.item = ? ORDER BY h.id", (item,))
        return [_load(*row) for row in rows]

    def heads_of_kind(self, kind: Kind) -> Iterator[tuple[bytes, list[Record]]]:
        rows = self._db.execute(
            "SELECT h.item, r.id, r.data FROM heads h JOIN records r ON r.id = h.id "
            "WHERE h.kind = ? ORDER BY h.item, h.id", (int(kind),)).fetchall()
        current: bytes | None = None
        group: list[Record] = []
        for item, rid, data in rows:
            if item != current:
                if current is not None:
                    yield current, group
                current, group = item, []
            group.append(_load(rid, data))
        if current is not None:
            yield current, group

    def items_with_concurrent_versions(self, kind: Kind) -> list[bytes]:
        """From the heads index alone, without loading any record."""
        rows = self._db.execute(
            "SELECT item FROM heads WHERE kind = ? GROUP BY item HAVING COUNT(*) > 1",
            (int(kind),)).fetchall()
        return [bytes(item) for (item,) in rows]

    def versions(self, item: bytes) -> list[Record]:
        rows = self._db.execute("SELECT id, data FROM records WHERE item = ? ORDER BY n", (item,))
        return [_load(*row) for row in rows]

    def records_after(self, origin: bytes, seq: int, limit: int) -> list[Record]:
        rows = self._db.execute(
            "SELECT id, data FROM records WHERE origin = ? AND seq > ? ORDER BY seq LIMIT ?",
            (origin, seq, limit))
        return [_load(*row) for row in rows]

    def record_ids(self) -> Iterator[bytes]:
        for (rid,) in self._db.execute("SELECT id FROM records ORDER BY id").fetchall():
            yield bytes(rid)

    def seen(self) -> dict[bytes, int]:
        return {bytes(o): s for o, s in self._db.execute("SELECT origin, seq FROM seen")}

    def max_seq(self, origin: bytes) -> int:
        row = self._one("SELECT MAX(seq) FROM records WHERE origin = ?", origin)
        return int(row[0]) if row and row[0] is not None else 0  # type: ignore[call-overload]

    def origins(self) -> dict[bytes, int]:
        rows = self._db.execute("SELECT origin, MAX(seq) FROM records GROUP BY origin")
        return {bytes(o): int(n) for o, n in rows}

    def count_records(self) -> int:
        row = self._one("SELECT COUNT(*) FROM records")
        return int(row[0]) if row else 0  # type: ignore[call-overload]

    def close(self) -> None:
        self._db.close()

    def _insert(self, record: Record, is_head: bool, dropped: list[bytes]) -> None:
        h = record.header
        self._db.execute(
            "INSERT INTO records (id, origin, seq, item, kind, data) VALUES (?, ?, ?, ?, ?, ?)",
            (record.id, h.author, h.seq, h.item, int(h.kind), record.encoded))
        if is_head:
            self._db.executemany(
                "DELETE FROM heads WHERE item = ? AND id = ?", [(h.item, d) for d in dropped])
            self._db.execute(
                "INSERT INTO heads (item, id, kind) VALUES (?, ?, ?)",
                (h.item, record.id, int(h.kind)))

    def append_many(self, records: Sequence[Record]) -> list[AppendResult]:
        """The batched append of the contract with a handful of statements per batch.

        Sync applies batches of up to a thousand records: looking everything up at once
        and writing with ``executemany`` makes a 100k-record initial sync several times
        faster than one ``append`` (eight statements) per record.
        """
        with self.transaction():
            if not records:
                return []
            ids = [r.id for r in records]
            held_ids = self._existing("SELECT id FROM records WHERE id IN ({})", ids)
            by_origin: dict[bytes, list[int]] = {}
            for r in records:
                by_origin.setdefault(r.header.author, []).append(r.header.seq)
            held_seq: dict[tuple[bytes, int], bytes] = {}
            for origin, seqs in by_origin.items():
                rows = self._db.execute(
                    "SELECT seq, id FROM records WHERE origin = ? AND seq BETWEEN ? AND ?",
                    (origin, min(seqs), max(seqs)))
                held_seq.update(((origin, seq), bytes(rid)) for seq, rid in rows)
            items = list({r.header.item for r in records if r.id not in held_ids})
            heads: dict[bytes, list[tuple[bytes, Mapping[bytes, int]]]] = {}
            for i in range(0, len(items), _IN_CHUNK):
                chunk = items[i:i + _IN_CHUNK]
                rows = self._db.execute(
                    "SELECT h.item, r.id, r.data FROM heads h JOIN records r ON r.id = h.id "
                    f"WHERE h.item IN ({','.join('?' * len(chunk))}) ORDER BY h.id", chunk)
                for item, rid, data in rows:
                    heads.setdefault(bytes(item), []).append(
                        (bytes(rid), _load(rid, data).header.versions))
            original = {item: {rid for rid, _v in held} for item, held in heads.items()}
            results: list[AppendResult] = []
            new: list[Record] = []
            for r in records:
                h = r.header
                key = (h.author, h.seq)
                if r.id in held_ids:
                    results.append(AppendResult.DUPLICATE)
                    continue
                if held_seq.setdefault(key, r.id) != r.id:
                    raise IntegrityError(
                        "a different record with the same origin and seq is held")
                current = heads.get(h.item, [])
                keep, drop = maximal([v for _rid, v in current], h.versions)
                if keep:
                    heads[h.item] = [x for i, x in enumerate(current) if i not in drop]
                    heads[h.item].append((r.id, h.versions))
                held_ids.add(r.id)
                new.append(r)
                results.append(AppendResult.HEAD if keep else AppendResult.OBSOLETE)
            self._db.executemany(
                "INSERT INTO records (id, origin, seq, item, kind, data) VALUES (?, ?, ?, ?, ?, ?)",
                [(r.id, r.header.author, r.header.seq, r.header.item, int(r.header.kind),
                  r.encoded) for r in new])
            kinds = {r.header.item: int(r.header.kind) for r in new}
            removed: list[tuple[bytes, bytes]] = []
            added: list[tuple[bytes, bytes, int]] = []
            for item, held in heads.items():
                now = {rid for rid, _v in held}
                before = original.get(item, set())
                removed.extend((item, rid) for rid in before - now)
                added.extend((item, rid, kinds[item]) for rid in now - before)
            self._db.executemany("DELETE FROM heads WHERE item = ? AND id = ?", removed)
            self._db.executemany("INSERT INTO heads (item, id, kind) VALUES (?, ?, ?)", added)
            fp = self.fingerprint()
            for r in new:
                fp = fingerprint_add(fp, r.id)
            self.set_meta("fingerprint", fp)
            seen = self.seen()
            for origin in {r.header.author for r in new}:
                start = n = seen.get(origin, 0)
                batch_seqs = {seq for (o, seq) in held_seq if o == origin}
                while n + 1 in batch_seqs or self.has_seq(origin, n + 1):
                    n += 1
                if n > start:
                    self._set_seen(origin, n)
            return results

    def _existing(self, sql: str, keys: list[bytes]) -> set[bytes]:
        found: set[bytes] = set()
        for i in range(0, len(keys), _IN_CHUNK):
            chunk = keys[i:i + _IN_CHUNK]
            found.update(bytes(k) for (k,) in self._db.execute(
                sql.format(",".join("?" * len(chunk))), chunk))
        return found

    def _set_seen(self, origin: bytes, seq: int) -> None:
        self._db.execute(
            "INSERT INTO seen (origin, seq) VALUES (?, ?) "
            "ON CONFLICT (origin) DO UPDATE SET seq = excluded.seq", (origin, seq))

    def _delete_records(self, records: list[Record]) -> None:
        self._db.executemany("DELETE FROM heads WHERE id = ?", [(r.id,) for r in records])
        self._db.executemany("DELETE FROM records WHERE id = ?", [(r.id,) for r in records])

    def _replace_heads(self, item: bytes, record_ids: list[bytes]) -> None:
        kind_row = self._one("SELECT kind FROM records WHERE item = ? LIMIT 1", item)
        self._db.execute("DELETE FROM heads WHERE item = ?", (item,))
        if kind_row is not None:
            self._db.executemany(
                "INSERT INTO heads (item, id, kind) VALUES (?, ?, ?)",
                [(item, rid, kind_row[0]) for rid in record_ids])
