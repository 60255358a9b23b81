"""The on-disk store: one SQLite file in WAL mode, every write in one transaction."""

from __future__ import annotations

import bisect
import os
import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from wifisync.errors import IntegrityError, StoreError
from wifisync.model import crypto
from wifisync.model.records import Kind, Record
from wifisync.store.base import STREAM_BATCH, RecordStore
from wifisync.store.checkpoints import BACKSTOP_PAGES, WAL_LIMIT_BYTES, Checkpoints

SCHEMA_VERSION = 8
BUSY_TIMEOUT_MS = 60_000
# The page cache is sized for what every write batch touches at random: the entries of the
# records' ID index and of item_log, about INDEX_BYTES_PER_RECORD per record held (measured
# with dbstat on a 100k store: 18 + 30 bytes, pages filled by random inserts; rounded up
# for margin; 46 + 30 before schema v8): 8 MiB at 100k records. Record bodies are written
# at the end of the table and read in one pass, so caching them buys nothing: each page
# would be one more for a CLI scan or a daemon to hold (a cache rounded up to 16 MiB at
# 100k filled with them: the receiving daemon's peak). The size follows the store as it
# grows, in 2 MiB steps.
INDEX_BYTES_PER_RECORD = 64
# A new store's pages: 16 KiB instead of SQLite's 4. A sync commit rewrites nearly every
# page of the random-key indexes; in larger pages the same bytes are fewer WAL frames and
# B-tree pages to handle: an initial sync's commits cost half the CPU (100k records, pages
# of 4/8/16/32 KiB: 1.35/1.10/0.96/0.93 s of CPU for SQLite's inserts and commits). The
# page cache is sized in bytes, so it holds the same. Existing stores keep their size
# (SQLite changes it only by a VACUUM, which this does not run).
PAGE_BYTES = 16 * 1024
MIN_CACHE_KIB = 2 * 1024  # SQLite's own default
MAX_CACHE_KIB = 32 * 1024
_IN_CHUNK = 500  # keys per IN (...) list, well under SQLite's variable limit
LARGE_RECORD_BYTES = 32 * 1024  # records this size or more count towards releasing the cache
RELEASE_AFTER_BYTES = 2 * 1024 * 1024
TitleTagRow = tuple[bytes, bytes, bytes | None, Record | None]  # see stream_title_tags
_BYTE_VALUES = "X'" + "".join(f"{i:02x}" for i in range(256)) + "'"


def _data_byte(position: int) -> str:
    """SQL for the value (0-255) of the byte at a 1-based position of a record's data."""
    return f"(instr({_BYTE_VALUES}, substr(data, {position}, 1)) - 1)"


# A stored record is canonical msgpack (Record.decode checks it on arrival): a 3-array
# (0x93, or 0x94 with a tree proof), then the header as bin 8 (0xc4, one length byte) or
# bin 16 (0xc5, two), whose last byte is the header's last field, the deleted flag (0xc2
# false, 0xc3 true).
_DELETED_FLAG = (
    f"CASE substr(data, 2, 1) WHEN X'c4' THEN substr(data, 3 + {_data_byte(3)}, 1) "
    f"WHEN X'c5' THEN substr(data, 4 + 256 * {_data_byte(3)} + {_data_byte(4)}, 1) END")

ID_KEY_BYTES = 8  # of a record ID, in the index that finds records by ID (schema v8)


def _id_is(param: str = "?1") -> str:
    """SQL for "the record's ID is ``param``" that finds it by the ID index (schema v8)."""
    return f"substr(id, 1, {ID_KEY_BYTES}) = substr({param}, 1, {ID_KEY_BYTES}) AND id = {param}"


# Each entry migrates from version i to i+1; a new store runs them all.
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
    # v2: one clustered per-item log with a held flag replaces the records_item index, the
    # heads table and its two indexes: a new record costs one random-key insert there
    # instead of four, which halves SQLite's share of an initial sync. Only the few
    # membership and vault-key rows need a kind index.
    """
    CREATE TABLE item_log (
        item BLOB NOT NULL,
        n INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        held INTEGER NOT NULL,
        PRIMARY KEY (item, n)
    ) WITHOUT ROWID;
    INSERT INTO item_log (item, n, kind, held)
        SELECT r.item, r.n, r.kind,
               EXISTS (SELECT 1 FROM heads h WHERE h.item = r.item AND h.id = r.id)
        FROM records r;
    CREATE INDEX item_log_control ON item_log (kind, item) WHERE held = 1 AND kind != 1;
    DROP TABLE heads;
    DROP INDEX records_item;
    """,
    # v3: this device's marks of records whose signature it has checked (wifisync.store.sigmarks)
    """
    CREATE TABLE signature_marks (id BLOB PRIMARY KEY, mark BLOB NOT NULL) WITHOUT ROWID;
    """,
    # v4: records held but not accepted (now): kept, never held versions (wifisync.sync.acceptance)
    """
    CREATE TABLE inactive (id BLOB PRIMARY KEY, item BLOB NOT NULL) WITHOUT ROWID;
    CREATE INDEX inactive_item ON inactive (item);
    """,
    # v5: this device's marks over whole batches it accepted: the records of rows lo..hi
    """
    CREATE TABLE signature_sets (lo INTEGER PRIMARY KEY, hi INTEGER NOT NULL, mark BLOB NOT NULL);
    """,
    # v6: an index of the item tombstones (by the deleted flag in each stored header, see
    # _DELETED_FLAG; SQLite keeps it up to date itself), so that live items are counted
    # without reading a record; and the title tags that find items by title without
    # decrypting them all (wifisync.vault.titlesearch; no title in clear)
    f"""
    CREATE INDEX records_tombstones ON records (n) WHERE kind = 1 AND {_DELETED_FLAG} = X'c3';
    CREATE TABLE title_tags (
        item BLOB NOT NULL, n INTEGER NOT NULL, id BLOB NOT NULL, tag BLOB NOT NULL,
        PRIMARY KEY (item, n)
    ) WITHOUT ROWID;
    """,
    # v7: twins kept aside (an author signed two records with one origin and seq: the lower
    # ID holds the place in records, the others are kept here; see RecordStore.append_twin)
    """
    CREATE TABLE twins (
        id BLOB PRIMARY KEY, origin BLOB NOT NULL, seq INTEGER NOT NULL, item BLOB NOT NULL,
        kind INTEGER NOT NULL, data BLOB NOT NULL
    );
    CREATE INDEX twins_place ON twins (origin, seq);
    """,
    # v8: records are found by ID through an index of its first ID_KEY_BYTES bytes instead
    # of a UNIQUE index of the whole ID (which UNIQUE (origin, seq) implies: an ID hashes
    # both). Random keys make every commit rewrite nearly every page of such an index; a
    # key of a quarter of the size is a quarter of the pages: a 100k-record initial sync's
    # inserts and commits took 2.0 s of CPU and 288 MiB of WAL, now 1.5 s and 223 MiB.
    # Every lookup by ID names both (see _id_is).
    f"""
    CREATE TABLE records_v8 (
        n INTEGER PRIMARY KEY,
        id BLOB NOT NULL,
        origin BLOB NOT NULL,
        seq INTEGER NOT NULL,
        item BLOB NOT NULL,
        kind INTEGER NOT NULL,
        data BLOB NOT NULL,
        UNIQUE (origin, seq)
    );
    INSERT INTO records_v8 (n, id, origin, seq, item, kind, data)
        SELECT n, id, origin, seq, item, kind, data FROM records;
    DROP TABLE records;
    ALTER TABLE records_v8 RENAME TO records;
    CREATE INDEX records_id ON records (substr(id, 1, {ID_KEY_BYTES}));
    CREATE INDEX records_tombstones ON records (n) WHERE kind = 1 AND {_DELETED_FLAG} = X'c3';
    """,
]
_ITEM = int(Kind.ITEM)
assert _ITEM == 1, "item_log_control's WHERE clause names the ITEM kind as 1"
_HELD = "SELECT l.item, l.n, r.id, r.data FROM item_log l JOIN records r ON r.n = l.n "


def cache_kib(records: int) -> int:
    """The page cache for a store of ``records`` records, in KiB (see INDEX_BYTES_PER_RECORD)."""
    need = records * INDEX_BYTES_PER_RECORD // 1024
    return min(MAX_CACHE_KIB, max(MIN_CACHE_KIB, -(-need // MIN_CACHE_KIB) * MIN_CACHE_KIB))


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
            self._db.execute(f"PRAGMA page_size = {PAGE_BYTES}")  # a new store's only
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from exc
        if mode != "wal":
            raise StoreError(f"{path}: cannot switch the store to WAL mode")
        self._lock = threading.RLock()
        self._depth = 0
        self._durable = True  # whether the open transaction must be durable
        self._relaxed = False  # whether the connection is at synchronous = NORMAL: set for a
        # relaxed transaction and kept until a durable one begins (a daemon's are all relaxed)
        self._meta: dict[str, bytes | None] = {}  # meta values read or written in write
        # transactions; valid while no other connection commits (see _begin)
        self._data_version = -1
        self._runs: list[tuple[list[bytes], int]] = []  # IDs and first row of each run of
        # records the open transaction stored (add_signature_set finds them without a query)
        self._large_bytes = 0  # large records read or written since the cache was released
        self._cache_kib = 0
        self._checkpoints: Checkpoints | None = None
        self._written = 0  # bytes of records the open transaction stored
        self._migrate()
        last = self._one("SELECT COALESCE(MAX(n), 0) FROM records")
        self._size_cache(int(last[0]) if last else 0)

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
    def transaction(self, durable: bool | None = None) -> Iterator[None]:
        """BEGIN IMMEDIATE so concurrent writers queue instead of failing; nested calls join.

        Durable: COMMIT waits for the WAL's fsync (``synchronous = FULL``). Not durable:
        ``synchronous = NORMAL``, so COMMIT only writes the WAL (the operating system has
        it, a killed process loses nothing; a power cut may lose it). The setting is
        changed only when the next transaction wants the other one (every write goes
        through here). SQLite takes it at BEGIN, so when a nested call asks for a durable
        transaction the WAL is synced after COMMIT instead.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                self._durable |= durable is True
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            relaxed = durable is False
            if relaxed != self._relaxed:
                self._db.execute(f"PRAGMA synchronous = {'NORMAL' if relaxed else 'FULL'}")
                self._relaxed = relaxed
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            self._durable = not relaxed
            try:
                self._check_meta()
                yield
            except BaseException:
                self._depth = 0
                self._runs.clear()
                self._written = 0
                self._meta.clear()
                self._db.execute("ROLLBACK")
                raise
            self._depth = 0
            self._runs.clear()
            written, self._written = self._written, 0
            try:
                self._db.execute("COMMIT")
            except BaseException:
                self._meta.clear()  # what this transaction wrote may not be in the file
                raise
            if self._checkpoints is not None:
                self._checkpoints.committed(written)
            if relaxed and self._durable:
                self._sync_wal()
            self._release()

    def _check_meta(self) -> None:
        """At BEGIN: drop the meta values kept if another connection committed since they
        were read (``data_version`` changes exactly then); while this connection holds the
        write lock nobody else can change them."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._meta.clear()
            self._data_version = version

    def _sync_wal(self) -> None:
        """Make every committed transaction durable: fsync the WAL, as FULL's COMMIT does."""
        fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _size_cache(self, records: int) -> None:
        """Give the page cache room for the random-key indexes of ``records`` records."""
        kib = cache_kib(records)
        if kib != self._cache_kib:
            self._cache_kib = kib
            self._db.execute(f"PRAGMA cache_size = -{kib}")

    def _note(self, size: int) -> int:
        """Count a record read or written; returns ``size``."""
        if size >= LARGE_RECORD_BYTES:
            self._large_bytes += size
        return size

    def _release(self) -> None:
        """Drop the page cache once large records went through it.

        The cache is sized for the indexes of a large vault; attachment chunks would
        otherwise fill it with pages read or written once, tens of MiB per process.
        Inside a write transaction SQLite keeps the pages it still needs.
        """
        if self._large_bytes >= RELEASE_AFTER_BYTES:
            self._large_bytes = 0
            self._db.execute("PRAGMA shrink_memory")

    def _one(self, sql: str, *args: object) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._db.execute(sql, args).fetchone()
        return row

    def get_meta(self, key: str) -> bytes | None:
        """Inside a write transaction a value read before is not read again."""
        if self._depth and key in self._meta:
            return self._meta[key]
        row = self._one("SELECT value FROM meta WHERE key = ?", key)
        value = None if row is None else bytes(row[0])
        if self._depth:
            self._meta[key] = value
        return value

    def set_meta(self, key: str, value: bytes) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))
            self._meta[key] = bytes(value)

    def has_record(self, record_id: bytes) -> bool:
        return self._one(f"SELECT 1 FROM records WHERE {_id_is()} UNION ALL "
                         "SELECT 1 FROM twins WHERE id = ?1", record_id) is not None

    def get_record(self, record_id: bytes) -> Record | None:
        row = self._one(f"SELECT id, data FROM records WHERE {_id_is()}", record_id) \
            or self._one("SELECT id, data FROM twins WHERE id = ?", record_id)
        if row is None:
            return None
        self._note(len(row[1]))
        self._release()
        return _load(row[0], row[1])

    def has_seq(self, origin: bytes, seq: int) -> bool:
        return self._one(
            "SELECT 1 FROM records WHERE origin = ? AND seq = ?", origin, seq) is not None

    def heads(self, item: bytes) -> list[Record]:
        rows = self._db.execute(
            _HELD + "WHERE l.item = ? AND l.held = 1 ORDER BY r.id", (item,)).fetchall()
        for row in rows:
            self._note(len(row[3]))
        self._release()
        return [_load(rid, data) for _item, _n, rid, data in rows]

    def heads_of_kind(self, kind: Kind) -> Iterator[tuple[bytes, list[Record]]]:
        rows = self._db.execute(
            _HELD + f"WHERE l.kind = ? AND l.held = 1 {_control(kind, 'l.')} ORDER BY l.item, r.id",
            (int(kind),)).fetchall()
        current: bytes | None = None
        group: list[Record] = []
        for item, _n, rid, data in rows:
            if item != current:
                if current is not None:
                    yield current, group
                current, group = item, []
            group.append(_load(rid, data))
        if current is not None:
            yield current, group

    def held_items(self, kind: Kind) -> list[bytes]:
        """From the item log alone: a corrupt record does not hide the other items."""
        rows = self._db.execute(
            f"SELECT DISTINCT item FROM item_log WHERE kind = ? AND held = 1 {_control(kind)} "
            "ORDER BY item", (int(kind),)).fetchall()
        return [bytes(item) for (item,) in rows]

    def items_with_concurrent_versions(self, kind: Kind) -> list[bytes]:
        """From the item log alone, without loading any record."""
        rows = self._db.execute(
            f"SELECT item FROM item_log WHERE kind = ? AND held = 1 {_control(kind)} "
            "GROUP BY item HAVING COUNT(*) > 1", (int(kind),)).fetchall()
        return [bytes(item) for (item,) in rows]

    def versions(self, item: bytes) -> list[Record]:
        rows = self._db.execute(_HELD + "WHERE l.item = ? ORDER BY l.n", (item,))
        return [_load(rid, data) for _item, _n, rid, data in rows]

    def records_after(self, origin: bytes, seq: int, limit: int,
                      max_bytes: int | None = None) -> list[Record]:
        return [_load(rid, data)
                for _seq, rid, data in self.encoded_after(origin, seq, limit, max_bytes)]

    def encoded_after(self, origin: bytes, seq: int, limit: int,
                      max_bytes: int | None = None) -> list[tuple[int, bytes, bytes]]:
        """Each record's bytes checked against its ID, as :func:`_load` does, but not parsed."""
        rows = self._db.execute(
            "SELECT seq, id, data FROM records WHERE origin = ? AND seq > ? ORDER BY seq LIMIT ?",
            (origin, seq, limit))
        out: list[tuple[int, bytes, bytes]] = []
        size = 0
        for n, rid, data in rows:  # the cursor fetches row by row: stop reading at the bound
            if crypto.sha256(data) != rid:
                rows.close()
                raise IntegrityError(f"record {bytes(rid).hex()[:16]} in the store was altered")
            out.append((n, rid, data))
            size += self._note(len(data))
            if max_bytes is not None and size >= max_bytes:
                break
        rows.close()
        self._release()
        return out

    def record_ids(self) -> Iterator[bytes]:
        """Sorted here: no index holds whole IDs (schema v8)."""
        yield from sorted(bytes(rid) for (rid,) in self._db.execute("SELECT id FROM records"))

    def synced_ids(self) -> Iterator[bytes]:
        yield from sorted(bytes(rid) for (rid,) in self._db.execute(
            "SELECT id FROM records UNION ALL SELECT id FROM twins"))

    def twin_records(self, kind: Kind | None = None) -> list[Record]:
        rows = self._db.execute(
            "SELECT id, data FROM twins ORDER BY id" if kind is None else
            "SELECT id, data FROM twins WHERE kind = ? ORDER BY id",
            () if kind is None else (int(kind),))
        return [_load(rid, data) for rid, data in rows]

    def twins_at(self, origin: bytes, seq: int) -> list[Record]:
        return [_load(rid, data) for rid, data in self._db.execute(
            "SELECT id, data FROM twins WHERE origin = ? AND seq = ? ORDER BY id", (origin, seq))]

    def seen(self) -> dict[bytes, int]:
        return {bytes(o): s for o, s in self._db.execute("SELECT origin, seq FROM seen")}

    def max_seq(self, origin: bytes) -> int:
        row = self._one("SELECT MAX(seq) FROM records WHERE origin = ?", origin)
        return int(row[0]) if row and row[0] is not None else 0

    def origins(self) -> dict[bytes, int]:
        rows = self._db.execute("SELECT origin, MAX(seq) FROM records GROUP BY origin")
        return {bytes(o): int(n) for o, n in rows}

    def count_records(self) -> int:
        row = self._one("SELECT COUNT(*) FROM records")
        return int(row[0]) if row else 0

    def signature_marks(self, record_ids: Sequence[bytes]) -> dict[bytes, bytes]:
        marks: dict[bytes, bytes] = {}
        for i in range(0, len(record_ids), _IN_CHUNK):
            chunk = list(record_ids[i:i + _IN_CHUNK])
            marks.update((bytes(rid), bytes(m)) for rid, m in self._db.execute(
                f"SELECT id, mark FROM signature_marks WHERE id IN ({','.join('?' * len(chunk))})",
                chunk))
        return marks

    def add_signature_marks(self, marks: Mapping[bytes, bytes]) -> None:
        try:
            with self.transaction():
                self._db.executemany(
                    "INSERT INTO signature_marks (id, mark) VALUES (?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET mark = excluded.mark", marks.items())
        except sqlite3.Error as exc:  # read-only file, full disk: the caller decides
            raise StoreError(f"{self.path}: cannot store signature marks: {exc}") from exc

    def signature_sets(self, record_ids: Sequence[bytes]) -> list[tuple[list[bytes], bytes]]:
        rows: list[int] = []
        for i in range(0, len(record_ids), _IN_CHUNK):
            chunk = list(record_ids[i:i + _IN_CHUNK])
            rows.extend(n for (n,) in self._db.execute(
                f"SELECT n FROM records WHERE {_ids_in(len(chunk))}", _ids_args(chunk)))
        if len(rows) <= _IN_CHUNK // 8:  # a few records (show, get): only their sets
            sets = sorted({s for n in rows for s in self._db.execute(
                "SELECT lo, hi, mark FROM signature_sets WHERE lo <= ? ORDER BY lo DESC LIMIT 1",
                (n,))})
        else:
            sets = self._db.execute("SELECT lo, hi, mark FROM signature_sets ORDER BY lo"
                                    ).fetchall()
        starts = [lo for lo, _hi, _mark in sets]
        wanted: set[int] = set()
        for n in rows:
            at = bisect.bisect_right(starts, n) - 1
            if at >= 0 and n <= sets[at][1]:
                wanted.add(at)
        out: list[tuple[list[bytes], bytes]] = []
        for at in sorted(wanted):
            lo, hi, mark = sets[at]
            ids = [bytes(rid) for (rid,) in self._db.execute(
                "SELECT id FROM records WHERE n BETWEEN ? AND ?", (lo, hi))]
            out.append((ids, bytes(mark)))
        return out

    def add_signature_set(self, record_ids: Sequence[bytes], mark: bytes) -> bool:
        with self._lock:
            run = self._stored_run(record_ids)
            if run is None:
                return False
            try:
                with self.transaction():
                    self._db.execute("INSERT OR REPLACE INTO signature_sets (lo, hi, mark) "
                                     "VALUES (?, ?, ?)", (*run, mark))
            except sqlite3.Error as exc:  # read-only file, full disk: the caller decides
                raise StoreError(f"{self.path}: cannot store signature marks: {exc}") from exc
        return True

    def _stored_run(self, record_ids: Sequence[bytes]) -> tuple[int, int] | None:
        """The first and last row of these records when they are one run of rows, else None.

        Records the open transaction stored together are known without a query (a daemon
        marks each batch it accepts, inside the transaction that stored it).
        """
        ids = list(record_ids)
        for stored, first in self._runs:
            if stored == ids:
                return first, first + len(ids) - 1
        lo, hi, count = None, None, 0
        for i in range(0, len(record_ids), _IN_CHUNK):
            chunk = list(record_ids[i:i + _IN_CHUNK])
            row = self._one(f"SELECT min(n), max(n), count(*) FROM records "
                            f"WHERE {_ids_in(len(chunk))}", *_ids_args(chunk))
            if row is None or row[0] is None:
                return None
            lo = row[0] if lo is None else min(lo, row[0])
            hi = row[1] if hi is None else max(hi, row[1])
            count += row[2]
        if lo is None or hi is None or count != len(record_ids) or hi - lo + 1 != count:
            return None  # not one run of rows: nothing to mark as a set
        return lo, hi

    def release_memory(self) -> None:
        """Hand the page cache back (after an initial sync: a daemon then mostly idles), and
        with checkpoints in the background, leave a short WAL."""
        with self._lock:
            self._db.execute("PRAGMA shrink_memory")
        if self._checkpoints is not None:
            self._checkpoints.now()

    def checkpoint_in_background(self) -> None:
        """Hand WAL checkpoints to a thread of their own (a daemon's store: its commits wait
        for nothing but their own pages); see :mod:`wifisync.store.checkpoints`."""
        if self._checkpoints is None:
            with self._lock:
                self._db.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
                self._db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
            self._checkpoints = Checkpoints(self.path, BUSY_TIMEOUT_MS)

    def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.close()
            self._checkpoints = None
        self._db.close()

    def _held_at(self, records: Sequence[Record]) -> dict[tuple[bytes, int], bytes]:
        """One range query per origin of the batch."""
        by_origin: dict[bytes, list[int]] = {}
        for r in records:
            h = r.header
            by_origin.setdefault(h.author, []).append(h.seq)
        held: dict[tuple[bytes, int], bytes] = {}
        for origin, seqs in by_origin.items():
            rows = self._db.execute(
                "SELECT seq, id FROM records WHERE origin = ? AND seq BETWEEN ? AND ?",
                (origin, min(seqs), max(seqs)))
            held.update(((origin, seq), bytes(rid)) for seq, rid in rows)
        return held

    def _held_versions(self, items: Collection[bytes]
                       ) -> dict[bytes, list[tuple[bytes, Mapping[bytes, int]]]]:
        """A query per ``_IN_CHUNK`` items; each held record's header is decoded."""
        wanted = list(items)
        heads: dict[bytes, list[tuple[bytes, Mapping[bytes, int]]]] = {}
        for i in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[i:i + _IN_CHUNK]
            rows = self._db.execute(
                _HELD + f"WHERE l.item IN ({','.join('?' * len(chunk))}) AND l.held = 1 "
                "ORDER BY r.id", chunk)
            for item, _n, rid, data in rows:
                heads.setdefault(bytes(item), []).append(
                    (bytes(rid), _load(rid, data).header.versions))
        return heads

    def _store_new(self, new: Sequence[Record], held: AbstractSet[bytes],
                   superseded: Sequence[tuple[bytes, bytes]]) -> None:
        """Three ``executemany`` statements, whatever the batch size."""
        first = self._one("SELECT COALESCE(MAX(n), 0) FROM records")
        n0 = int(first[0]) + 1 if first else 1
        rows, log = [], []
        for n, r in enumerate(new, n0):
            h, rid, data = r.header, r.id, r.encoded
            self._written += self._note(len(data))
            kind = int(h.kind)
            rows.append((n, rid, h.author, h.seq, h.item, kind, data))
            log.append((h.item, n, kind, int(rid in held)))
        self._db.executemany(
            "INSERT INTO records (n, id, origin, seq, item, kind, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        self._db.executemany(
            "INSERT INTO item_log (item, n, kind, held) VALUES (?, ?, ?, ?)", log)
        if self._depth:
            self._runs.append(([r.id for r in new], n0))
        if superseded:  # none for an item's first version
            self._db.executemany(
                "UPDATE item_log SET held = 0 WHERE item = ?1 AND n = "
                f"(SELECT n FROM records WHERE {_id_is('?2')})", superseded)
        self._size_cache(n0 + len(new) - 1)

    def _take_out(self, record: Record) -> None:
        row = self._one(f"SELECT n FROM records WHERE {_id_is()}", record.id)
        assert row is not None, "only a held record is taken out"
        n, item = int(row[0]), record.header.item
        self._db.execute("DELETE FROM item_log WHERE item = ? AND n = ?", (item, n))
        self._db.execute("DELETE FROM title_tags WHERE item = ? AND n = ?", (item, n))
        self._db.execute("DELETE FROM inactive WHERE id = ?", (record.id,))
        self._db.execute("DELETE FROM signature_marks WHERE id = ?", (record.id,))
        self._db.execute("DELETE FROM signature_sets WHERE lo = (SELECT MAX(lo) FROM "
                         "signature_sets WHERE lo <= ?) AND hi >= ?", (n, n))
        self._db.execute("DELETE FROM records WHERE n = ?", (n,))
        self._runs.clear()  # a run this transaction stored may have held it

    def _put_aside(self, record: Record) -> None:
        self._written += self._note(len(record.encoded))
        h = record.header
        self._db.execute(
            "INSERT INTO twins (id, origin, seq, item, kind, data) VALUES (?, ?, ?, ?, ?, ?)",
            (record.id, h.author, h.seq, h.item, int(h.kind), record.encoded))

    def _set_seen(self, origin: bytes, seq: int) -> None:
        self._db.execute(
            "INSERT INTO seen (origin, seq) VALUES (?, ?) "
            "ON CONFLICT (origin) DO UPDATE SET seq = excluded.seq", (origin, seq))

    def inactive_records(self, items: Collection[bytes] | None = None) -> list[Record]:
        sql = ("SELECT r.id, r.data FROM inactive i CROSS JOIN records r "
               f"ON substr(r.id, 1, {ID_KEY_BYTES}) = substr(i.id, 1, {ID_KEY_BYTES}) "
               "AND r.id = i.id ")
        if items is None:
            return [_load(*row) for row in self._db.execute(sql + "ORDER BY i.id")]
        wanted = list(items)
        out: list[Record] = []
        for i in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[i:i + _IN_CHUNK]
            out.extend(_load(*row) for row in self._db.execute(
                sql + f"WHERE i.item IN ({','.join('?' * len(chunk))})", chunk))
        return sorted(out, key=lambda r: r.id)

    def count_inactive(self) -> int:
        row = self._one("SELECT COUNT(*) FROM inactive")
        return int(row[0]) if row else 0

    def is_inactive(self, record_id: bytes) -> bool:
        return self._one("SELECT 1 FROM inactive WHERE id = ?", record_id) is not None

    def _set_inactive(self, records: Sequence[Record], inactive: bool) -> None:
        if inactive:
            self._db.executemany("INSERT OR IGNORE INTO inactive (id, item) VALUES (?, ?)",
                                 [(r.id, r.header.item) for r in records])
        else:
            self._db.executemany("DELETE FROM inactive WHERE id = ?", [(r.id,) for r in records])

    def _replace_heads(self, item: bytes, record_ids: list[bytes]) -> None:
        self._db.execute("UPDATE item_log SET held = 0 WHERE item = ?", (item,))
        self._db.executemany(
            "UPDATE item_log SET held = 1 WHERE item = ?1 AND n = "
            f"(SELECT n FROM records WHERE {_id_is('?2')})",
            [(item, rid) for rid in record_ids])

    # --- reads sized for large vaults (the CLI at scale) ------------------------------------

    def count_live_items(self) -> int:
        """Items with a held version that is not a tombstone, from the item log and the
        tombstone index alone: no record is read (100k items: ~25 ms)."""
        row = self._one(
            "SELECT COUNT(DISTINCT item) FROM item_log WHERE kind = ? AND held = 1 AND n NOT IN "
            f"(SELECT n FROM records WHERE kind = 1 AND {_DELETED_FLAG} = X'c3')", _ITEM)
        return int(row[0]) if row else 0

    def held_items_with_prefix(self, kind: Kind, prefix: str) -> list[bytes]:
        """Held items of ``kind`` whose ID, in hex, starts with ``prefix``: a range of the
        item log's key, nothing else read."""
        low, high = _hex_prefix_range(prefix)
        sql = (f"SELECT DISTINCT item FROM item_log WHERE kind = ? AND held = 1 {_control(kind)} "
               "AND item >= ?")
        args: list[object] = [int(kind), low]
        if high is not None:
            sql += " AND item < ?"
            args.append(high)
        return [bytes(item) for (item,) in self._db.execute(sql + " ORDER BY item", args)]

    def stream_title_tags(self, batch: int = STREAM_BATCH
                          ) -> Iterator[list[TitleTagRow]]:
        """``(item, record ID, stored tag, record)`` of every held item version: the tag,
        or (none stored yet) the record (None: its bytes are corrupt). Where tags are
        stored no record is read; ``batch`` rows at a time, from one snapshot."""
        reader = self._snapshot_reader()
        try:
            reader.execute("BEGIN")
            cursor = reader.execute(
                "SELECT l.item, l.n, t.id, t.tag FROM item_log l LEFT JOIN title_tags t "
                "ON t.item = l.item AND t.n = l.n WHERE l.kind = ? AND l.held = 1", (_ITEM,))
            while rows := cursor.fetchmany(batch):
                missing = [n for _item, n, _id, tag in rows if tag is None]
                loaded: dict[int, tuple[bytes, Record | None]] = {}
                for i in range(0, len(missing), _IN_CHUNK):
                    chunk = missing[i:i + _IN_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    for n, rid, data in reader.execute(
                            f"SELECT n, id, data FROM records WHERE n IN ({marks})", chunk):
                        record = _loaded([(rid, data)])
                        loaded[n] = (bytes(rid), record[0] if record else None)
                yield [(bytes(item), bytes(rid), bytes(tag), None) if tag is not None
                       else (bytes(item), loaded[n][0], None, loaded[n][1])
                       for item, n, rid, tag in rows]
        finally:
            reader.close()

    def add_title_tags(self, tags: Mapping[bytes, bytes]) -> None:
        """Store the title tags of item versions by record ID (see stream_title_tags)."""
        if not tags:
            return
        try:
            with self.transaction():
                self._db.executemany(
                    "INSERT OR REPLACE INTO title_tags (item, n, id, tag) "
                    f"SELECT item, n, id, ?1 FROM records WHERE {_id_is('?2')}",
                    [(tag, rid) for rid, tag in tags.items()])
        except sqlite3.Error as exc:  # read-only file, full disk: the caller decides
            raise StoreError(f"{self.path}: cannot store title tags: {exc}") from exc

    def _snapshot_reader(self) -> sqlite3.Connection:
        """A read-only connection to this store: its snapshot outlives this connection's writes."""
        return sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                               timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)

    def stream_heads(self, kind: Kind, batch: int = STREAM_BATCH
                     ) -> Iterator[list[tuple[bytes, list[Record] | None]]]:
        """Every held item of ``kind`` with its heads, ``batch`` items at a time, all from
        one snapshot; ``None`` in place of the heads of an item whose record is corrupt.

        Memory stays bounded whatever the vault's size: rows come off one cursor in the
        records' own order (no sort); the few items with concurrent heads come last. The
        snapshot is held by a second, read-only connection, so the caller may write
        (signature marks) on this one between batches while another process syncs.
        """
        reader = self._snapshot_reader()
        try:
            reader.execute("BEGIN")  # one snapshot for both statements below
            several = {bytes(item) for (item,) in reader.execute(
                f"SELECT item FROM item_log WHERE kind = ? AND held = 1 {_control(kind)} "
                "GROUP BY item HAVING COUNT(*) > 1", (int(kind),))}
            cursor = reader.execute(
                "SELECT r.item, r.id, r.data FROM records r JOIN item_log l "
                "ON l.item = r.item AND l.n = r.n "
                f"WHERE r.kind = ? AND l.held = 1 {_control(kind, 'r.')} ORDER BY r.n",
                (int(kind),))
            while rows := cursor.fetchmany(batch):
                yield [(bytes(item), _loaded([(rid, data)])) for item, rid, data in rows
                       if bytes(item) not in several]
            pending = sorted(several)
            for i in range(0, len(pending), batch):
                groups: list[tuple[bytes, list[Record] | None]] = []
                for item in pending[i:i + batch]:
                    rows = [(rid, data) for _i, _n, rid, data in reader.execute(
                        _HELD + "WHERE l.item = ? AND l.held = 1 ORDER BY r.id", (item,))]
                    groups.append((item, _loaded(rows)))
                yield groups
        finally:
            reader.close()


def _ids_in(count: int) -> str:
    """SQL for "the record's ID is one of ``count`` IDs" that finds them by the ID index;
    its arguments are :func:`_ids_args`."""
    marks = ",".join("?" * count)
    return f"substr(id, 1, {ID_KEY_BYTES}) IN ({marks}) AND id IN ({marks})"


def _ids_args(record_ids: Sequence[bytes]) -> list[bytes]:
    """The arguments of :func:`_ids_in`: each ID's index key, then the IDs."""
    return [rid[:ID_KEY_BYTES] for rid in record_ids] + list(record_ids)


def _control(kind: Kind, table: str = "") -> str:
    """The partial index's condition, spelled out so SQLite uses it for non-item kinds."""
    return "" if kind == Kind.ITEM else f"AND {table}kind != {_ITEM}"


def _hex_prefix_range(prefix: str) -> tuple[bytes, bytes | None]:
    """The IDs whose hex starts with ``prefix`` (lower-case hex digits): ``low <= id < high``
    (``high`` None: no upper bound)."""
    padded = prefix + "0" * (len(prefix) % 2)
    low = bytes.fromhex(padded)
    step = 16 if len(prefix) % 2 else 1  # an odd prefix fixes the high half of its last byte
    value = int.from_bytes(low, "big") + step
    if value >> (8 * len(low)):
        return low, None
    return low, value.to_bytes(len(low), "big")


def _loaded(rows: Sequence[tuple[bytes, bytes]]) -> list[Record] | None:
    """Stored records, or None when the bytes of one are corrupt (its item is unreadable)."""
    try:
        return [_load(rid, data) for rid, data in rows]
    except IntegrityError:
        return None
