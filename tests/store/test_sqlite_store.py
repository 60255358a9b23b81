"""What only the on-disk store promises: WAL, schema versions, shared use, altered rows refused."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wifisync.errors import IntegrityError, StoreError
from wifisync.identity import DeviceIdentity
from wifisync.records import Kind
from wifisync.store import SqliteStore
from wifisync.store.sqlite import SCHEMA_VERSION

from .builders import make_record


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
    from wifisync.author import Author
    from wifisync.identity import DeviceIdentity
    from wifisync.records import Kind
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
