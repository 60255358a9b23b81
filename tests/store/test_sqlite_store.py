"""What only the on-disk store promises: WAL, schema versions, shared use, altered rows refused."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.store.builders import make_record
from wifisync.errors import IntegrityError, StoreError
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Kind
from wifisync.store import AppendResult, MemoryStore, SqliteStore, sqlite
from wifisync.store.sqlite import SCHEMA_VERSION


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_store_is_in_wal_mode_with_its_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    SqliteStore(path).close()
    db = raw(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_reopening_keeps_records(tmp_path: Path, devices: list[DeviceIdentity]) -> None:
    path = tmp_path / "vault.db"
    s = SqliteStore(path)
    r = make_record(devices[0], 1)
    s.append(r)
    s.set_meta("vault_id", b"v" * 16)
    s.close()
    s = SqliteStore(path)
    assert s.has_record(r.id) and s.get_meta("vault_id") == b"v" * 16
    assert s.seen() == {devices[0].device_id: 1} and s.fingerprint() != bytes(32)
    s.close()


def test_a_newer_schema_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    SqliteStore(path).close()
    db = raw(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        SqliteStore(path)
    db = raw(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    db.close()


@pytest.mark.parametrize("content", [b"this is not a database" * 100, b"\x00" * 4096])
def test_a_file_that_is_not_sqlite_is_a_store_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "vault.db"
    path.write_bytes(content)
    with pytest.raises(StoreError):
        SqliteStore(path)


def test_a_foreign_sqlite_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    db = raw(path)
    db.execute("CREATE TABLE records (x)")
    db.close()
    with pytest.raises(StoreError):
        SqliteStore(path)


def test_a_missing_folder_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        SqliteStore(tmp_path / "nowhere" / "vault.db")


def test_altered_record_bytes_are_detected_on_read(tmp_path: Path,
                                                   devices: list[DeviceIdentity]) -> None:
    path = tmp_path / "vault.db"
    s = SqliteStore(path)
    r = make_record(devices[0], 1)
    s.append(r)
    db = raw(path)
    altered = bytearray(r.encoded)
    altered[-1] ^= 1
    db.execute("UPDATE records SET data = ? WHERE id = ?", (bytes(altered), r.id))
    db.close()
    with pytest.raises(IntegrityError, match="altered"):
        s.get_record(r.id)
    with pytest.raises(IntegrityError):
        s.heads(r.header.item)
    with pytest.raises(IntegrityError):
        list(s.heads_of_kind(Kind.ITEM))
    with pytest.raises(IntegrityError):
        s.versions(r.header.item)
    with pytest.raises(IntegrityError):
        s.records_after(devices[0].device_id, 0, 10)
    with pytest.raises(IntegrityError, match="altered"):  # what a sender forwards unparsed
        s.encoded_after(devices[0].device_id, 0, 10)
    db = raw(path)
    db.execute("UPDATE records SET data = ? WHERE id = ?", (b"\xc1garbage", r.id))
    db.close()
    with pytest.raises(IntegrityError, match="corrupt"):
        s.get_record(r.id)
    s.close()


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from wifisync.vault.author import Author
    from wifisync.model.identity import DeviceIdentity
    from wifisync.model.records import Kind
    from wifisync.store import SqliteStore

    store = SqliteStore(Path(sys.argv[1]))
    me = DeviceIdentity.load(Path(sys.argv[2]))
    author = Author(store, me, b"v" * 16)
    tag = sys.argv[3].encode()
    print("ready", flush=True)
    sys.stdin.readline()
    for n in range(int(sys.argv[4])):
        item = (tag + n.to_bytes(4, "big")).ljust(16, b"-")
        author.write(item, Kind.ITEM, lambda h, held: b"body")
    store.close()
    """
)


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path,
                                                    devices: list[DeviceIdentity]) -> None:
    """The CLI and the daemon of one device share the file; sequence numbers never clash."""
    path = tmp_path / "vault.db"
    SqliteStore(path).close()
    devices[0].save(tmp_path / "id")
    per_process = 40
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(tmp_path / "id"), tag,
                          str(per_process)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for tag in ("a", "b")
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:  # start both at once
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        assert p.wait(timeout=60) == 0
    s = SqliteStore(path)
    me = devices[0].device_id
    assert s.count_records() == 2 * per_process
    assert s.seen() == {me: 2 * per_process}
    assert [r.header.seq for r in s.records_after(me, 0, 1000)] == list(
        range(1, 2 * per_process + 1))
    assert len(list(s.heads_of_kind(Kind.ITEM))) == 2 * per_process
    s.close()


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE records (
    n INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, origin BLOB NOT NULL,
    seq INTEGER NOT NULL, item BLOB NOT NULL, kind INTEGER NOT NULL, data BLOB NOT NULL,
    UNIQUE (origin, seq)
);
CREATE INDEX records_item ON records (item, n);
CREATE TABLE heads (
    item BLOB NOT NULL, id BLOB NOT NULL, kind INTEGER NOT NULL, PRIMARY KEY (item, id)
);
CREATE INDEX heads_kind ON heads (kind, item);
CREATE TABLE seen (origin BLOB PRIMARY KEY, seq INTEGER NOT NULL);
PRAGMA user_version = 1;
"""


def test_a_version_1_file_is_upgraded_with_its_records_intact(
        tmp_path: Path, devices: list[DeviceIdentity]) -> None:
    """A store written by the v1 schema (heads table) opens, migrates, and keeps working."""
    a, b = devices[0], devices[1]
    item, member = b"A" * 16, b"M" * 16
    log = [
        make_record(a, 1, item),
        make_record(a, 2, item),  # dominates a#1, which stays in the log only
        make_record(b, 1, item),  # concurrent with a#2: both held
        make_record(a, 3, member, kind=Kind.MEMBER),
    ]
    reference = MemoryStore()
    for r in log:
        reference.append(r)
    path = tmp_path / "vault.db"
    db = raw(path)
    db.executescript(V1_SCHEMA)
    db.execute("BEGIN")
    for r in log:
        h = r.header
        db.execute("INSERT INTO records (id, origin, seq, item, kind, data) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   (r.id, h.author, h.seq, h.item, int(h.kind), r.encoded))
    for key in (item, member):
        for held in reference.heads(key):
            db.execute("INSERT INTO heads (item, id, kind) VALUES (?, ?, ?)",
                       (key, held.id, int(held.header.kind)))
    db.executemany("INSERT INTO seen (origin, seq) VALUES (?, ?)", reference.seen().items())
    db.execute("INSERT INTO meta (key, value) VALUES ('fingerprint', ?)",
               (reference.fingerprint(),))
    db.execute("COMMIT")
    db.close()

    s = SqliteStore(path)
    assert raw(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert [r.id for r in s.heads(item)] == [r.id for r in reference.heads(item)]
    assert len(s.heads(item)) == 2
    assert [r.id for r in s.versions(item)] == [r.id for r in log[:3]]
    assert [(i, [r.id for r in held]) for i, held in s.heads_of_kind(Kind.MEMBER)] == [
        (member, [log[3].id])]
    assert s.items_with_concurrent_versions(Kind.ITEM) == [item]
    assert s.items_with_concurrent_versions(Kind.MEMBER) == []
    assert all(s.get_record(r.id) == r for r in log)
    assert s.seen() == reference.seen() and s.fingerprint() == reference.fingerprint()
    tables = {name for (name,) in raw(path).execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
    assert "heads" not in tables and "records_item" not in tables
    merged = make_record(a, 4, item, versions={b.device_id: 1})
    assert s.append(merged) is AppendResult.HEAD
    assert [r.id for r in s.heads(item)] == [merged.id]
    s.close()


def test_the_page_cache_holds_the_indexes_of_the_records_held(
        tmp_path: Path, devices: list[DeviceIdentity], monkeypatch: pytest.MonkeyPatch) -> None:
    assert [sqlite.cache_kib(n) for n in (0, 10_000, 100_000, 1_000_000)] == [
        2048, 2048, 8192, 32768]
    monkeypatch.setattr(sqlite, "INDEX_BYTES_PER_RECORD", 1024 * 1024)  # 1 MiB a record
    path = tmp_path / "vault.db"
    s = SqliteStore(path)

    def cache() -> int:
        return -int(s._db.execute("PRAGMA cache_size").fetchone()[0])

    assert cache() == 2048
    s.append_many([make_record(devices[0], n, item=bytes([n]) * 16) for n in range(1, 4)])
    assert cache() == 4096  # grows with the store
    s.close()
    s = SqliteStore(path)
    assert cache() == 4096  # and is sized for what a reopened store holds
    s.close()


def synchronous(s: SqliteStore) -> int:
    """The store connection's ``PRAGMA synchronous`` now (1 NORMAL, 2 FULL)."""
    return int(s._db.execute("PRAGMA synchronous").fetchone()[0])


def test_only_a_transaction_marked_not_durable_skips_the_sync(
        tmp_path: Path, devices: list[DeviceIdentity]) -> None:
    s = SqliteStore(tmp_path / "vault.db")
    assert synchronous(s) == 2
    with s.transaction():
        assert synchronous(s) == 2  # the default: every commit waits for its fsync
    with s.transaction(durable=False):
        assert synchronous(s) == 1
        s.append(make_record(devices[0], 1))
    with s.transaction(durable=False):  # a daemon's next one: the setting is kept
        assert synchronous(s) == 1
    with s.transaction():
        assert synchronous(s) == 2  # back for the next durable writer
    with pytest.raises(RuntimeError), s.transaction(durable=False):
        raise RuntimeError("rolled back")
    with s.transaction():
        assert synchronous(s) == 2
    s.set_meta("k", b"v")  # a write of its own is a durable transaction too
    assert synchronous(s) == 2
    s.close()
    s = SqliteStore(tmp_path / "vault.db")
    assert s.max_seq(devices[0].device_id) == 1  # committed all the same
    s.close()


def test_a_durable_write_nested_in_a_relaxed_transaction_syncs_the_wal(
        tmp_path: Path, devices: list[DeviceIdentity], synced_files: list[str]) -> None:
    path = tmp_path / "vault.db"
    s = SqliteStore(path)
    synced = synced_files
    with s.transaction(durable=False):
        s.append(make_record(devices[0], 1))
    assert synced == []
    with s.transaction(durable=False):
        s.append(make_record(devices[0], 2))  # joins the relaxed transaction
    assert synced == []
    with s.transaction(durable=False):
        s.append(make_record(devices[0], 3))
        with s.transaction(durable=True):  # as the author writes this device's records
            s.set_meta("note", b"this one must survive a power cut")
    assert synced == ["vault.db-wal"]
    s.close()


def test_a_power_cut_that_loses_the_unsynced_end_of_the_wal_leaves_an_earlier_store(
        tmp_path: Path, devices: list[DeviceIdentity]) -> None:
    """What a relaxed commit risks: the WAL's tail (not yet on disk) may be lost, cut
    anywhere, even mid-page; the store then opens as it was a few commits earlier."""
    path = tmp_path / "vault.db"
    s = SqliteStore(path)
    me = devices[0].device_id
    for seq in range(1, 21):
        with s.transaction(durable=False):
            s.append(make_record(devices[0], seq, item=bytes([seq]) * 16))
    wal = Path(f"{path}-wal").read_bytes()
    held_counts = []
    for cut in sorted({32, len(wal) // 7, len(wal) // 3 + 5, len(wal) // 2, len(wal) - 100,
                       len(wal)}):
        copy = tmp_path / f"cut{cut}"
        copy.mkdir()
        (copy / "vault.db").write_bytes(path.read_bytes())
        (copy / "vault.db-wal").write_bytes(wal[:cut])
        c = SqliteStore(copy / "vault.db")
        assert c._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = c.count_records()
        assert c.seen().get(me, 0) == c.max_seq(me) == n  # a prefix: 1..n, nothing torn
        held_counts.append(n)
        c.close()
    assert held_counts == sorted(held_counts) and held_counts[-1] == 20
    s.close()


def test_meta_read_in_a_transaction_is_read_again_after_another_connection_wrote_it(
        tmp_path: Path) -> None:
    """The store keeps meta values it read in a write transaction for the next ones, but
    never once another connection (the CLI, a daemon) committed meanwhile."""
    path = tmp_path / "vault.db"
    daemon, cli = SqliteStore(path), SqliteStore(path)
    daemon.set_meta("fingerprint", b"one")
    with daemon.transaction(durable=False):
        assert daemon.get_meta("fingerprint") == b"one"
    cli.set_meta("fingerprint", b"two")
    with daemon.transaction(durable=False):
        assert daemon.get_meta("fingerprint") == b"two"
    raw_db = raw(path)  # a writer outside wifisync as well
    with raw_db:
        raw_db.execute("UPDATE meta SET value = ? WHERE key = 'fingerprint'", (b"three",))
    raw_db.close()
    with daemon.transaction():
        assert daemon.get_meta("fingerprint") == b"three"
    daemon.close()
    cli.close()


def test_meta_written_in_a_rolled_back_transaction_is_not_kept(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "vault.db")
    s.set_meta("k", b"before")
    with pytest.raises(RuntimeError), s.transaction():
        s.set_meta("k", b"after")
        assert s.get_meta("k") == b"after"
        raise RuntimeError("rolled back")
    with s.transaction():
        assert s.get_meta("k") == b"before"
    s.close()
