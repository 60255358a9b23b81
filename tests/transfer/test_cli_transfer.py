"""import, export, backup and restore through the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, Cli
from tests.transfer import samples
from wifisync.home import Home
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Membership
from wifisync.store import SqliteStore
from wifisync.transfer.backup import make_backup
from wifisync.vault.unlocked import Vault

FILES: dict[str, Callable[[], bytes]] = {
    "msecure-csv": lambda: samples.MSECURE_B.encode(),
    "bitwarden-json": lambda: json.dumps(samples.BITWARDEN_JSON).encode(),
    "bitwarden-csv": lambda: samples.BITWARDEN_CSV.encode(),
    "1password-csv": lambda: samples.ONEPASSWORD_CSV.encode(),
    "1pux": lambda: samples.onepux([samples.ONEPUX_ITEM, samples.ONEPUX_CARD]),
    "keepassxc-csv": lambda: samples.KEEPASSXC_CSV.encode(),
}


def titles(cli: Cli) -> list[str]:
    return sorted(i["title"] for i in json.loads(cli.ok("list", "--json")))


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_import_detects_the_format_and_reimport_skips(initialised_cli: Cli, tmp_path: Path,
                                                      fmt: str) -> None:
    src = tmp_path / f"export.{fmt}"
    src.write_bytes(FILES[fmt]())
    out = initialised_cli.ok("import", str(src))
    assert out.startswith(f"{fmt}: ") and " 0 updated, 0 skipped" in out
    items = titles(initialised_cli)
    assert "Home Router" in items
    again = initialised_cli.ok("import", str(src), "--format", fmt)
    assert " 0 imported, 0 updated, " in again
    assert titles(initialised_cli) == items


def test_kdbx_with_password_file_then_missing_and_wrong_password(initialised_cli: Cli,
                                                                 tmp_path: Path,
                                                                 kdbx_bytes: bytes) -> None:
    cli = initialised_cli
    src = tmp_path / "vault.kdbx"
    src.write_bytes(kdbx_bytes)
    line = cli.fails("import", str(src))
    assert "--source-password-file" in line
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("nope\n")
    assert "wrong password" in cli.fails("import", str(src), "--source-password-file",
                                         str(wrong))
    good = tmp_path / "pw.txt"
    good.write_text(samples.KDBX_PASSWORD + "\n")
    out = cli.ok("import", str(src), "--source-password-file", str(good), "--tag", "keepass")
    assert "kdbx: 3 imported" in out and "attachments: 1 imported" in out
    assert "router.cfg" not in out  # kept, so not listed as a problem
    shown = json.loads(cli.ok("show", "Home Router", "--json"))
    assert shown["fields"]["PIN"] == "1234" and "keepass" in shown["tags"]
    assert [a["name"] for a in shown["attachments"]] == ["router.cfg"]


def test_undetectable_and_missing_files(initialised_cli: Cli, tmp_path: Path) -> None:
    odd = tmp_path / "odd.txt"
    odd.write_text("hello\nworld\n")
    line = initialised_cli.fails("import", str(odd))
    assert "msecure-csv" in line and "kdbx" in line and "wifisync-json" in line
    assert "cannot read" in initialised_cli.fails("import", str(tmp_path / "absent.csv"))
    initialised_cli.fails("import", str(odd), "--format", "lastpass", code=2)


def test_some_bad_rows_are_reported_and_the_rest_imported(initialised_cli: Cli,
                                                          tmp_path: Path) -> None:
    src = tmp_path / "m.csv"
    src.write_text(samples.MSECURE_B.replace("Door codes|9001", "Broken|1\nDoor codes|9001"))
    out = initialised_cli.ok("import", str(src))
    assert "3 imported" in out and "line 4:" in out
    assert len(titles(initialised_cli)) == 3


def test_dry_run_writes_nothing(initialised_cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "m.csv"
    src.write_text(samples.MSECURE_B)
    out = initialised_cli.ok("import", str(src), "--dry-run")
    assert "dry run" in out and "3 imported" in out
    assert titles(initialised_cli) == []


def test_export_needs_plaintext_is_private_and_round_trips(make_cli: Callable[[str], Cli],
                                                           tmp_path: Path) -> None:
    first, second = make_cli("first"), make_cli("second")
    first.init()
    second.init()
    src = tmp_path / "b.json"
    src.write_text(json.dumps(samples.BITWARDEN_JSON))
    first.ok("import", str(src))
    out1 = tmp_path / "one.json"
    assert "--plaintext" in first.fails("export", str(out1), code=2)
    assert not out1.exists()
    r = first.run("export", str(out1), "--plaintext")
    assert r.returncode == 0 and "warning" in r.stderr
    assert stat.S_IMODE(os.stat(out1).st_mode) == 0o600
    second.ok("import", str(out1))
    out2 = tmp_path / "two.json"
    second.ok("export", str(out2), "--plaintext")

    def items(path: Path) -> list[dict[str, object]]:
        return sorted(({k: v for k, v in i.items() if k != "id"}
                       for i in json.loads(path.read_text())["items"]),
                      key=lambda i: str(i["source"]))

    assert items(out1) == items(out2) and len(items(out1)) == 4
    out_csv = tmp_path / "all.csv"
    second.ok("export", str(out_csv), "--plaintext", "--format", "csv")
    assert out_csv.read_text().startswith("title,type,tags,")


def test_backup_and_restore(make_cli: Callable[[str], Cli], tmp_path: Path) -> None:
    origin, restored, other = make_cli("origin"), make_cli("restored"), make_cli("other")
    device_id = origin.init()
    src = tmp_path / "m.csv"
    src.write_text(samples.MSECURE_B)
    origin.ok("import", str(src))
    backup = tmp_path / "vault.backup"
    origin.ok("backup", str(backup))
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    assert b"c0rrect" not in backup.read_bytes() and b"Home Router" not in backup.read_bytes()
    assert "wrong master password" in restored.fails("restore", str(backup),
                                                      env={"WIFISYNC_PASSWORD": "bad"})
    assert restored.ok("restore", str(backup)).strip() == device_id
    assert titles(restored) == titles(origin)
    assert restored.ok("id").strip() == device_id
    other.init()
    assert "empty home" in other.fails("restore", str(backup))


def test_restore_of_a_revoked_devices_backup_says_so(cli: Cli, make_cli: Callable[[str], Cli],
                                                     tmp_path: Path) -> None:
    cli.init()
    home = Home.locate(str(cli.home))
    store = SqliteStore(home.store_file)
    try:
        owner = Vault.unlock(store, DeviceIdentity.load(home.data_dir), PASSWORD)
        laptop = DeviceIdentity.generate()
        owner.write_member(Membership(laptop.cert_der, "laptop"))
        owner.write_member(Membership(laptop.cert_der, "laptop", revoked=True))
        backup = tmp_path / "laptop.backup"
        backup.write_bytes(make_backup(Vault(store, laptop, owner.vault_key)))
    finally:
        store.close()
    line = make_cli("laptop").fails("restore", str(backup))
    assert "revoked" in line


def test_an_import_killed_midway_keeps_whole_batches_and_a_rerun_completes_it(
        initialised_cli: Cli, tmp_path: Path) -> None:
    """kill -9 during a long import: no half batch, and importing again adds the rest once."""
    import signal
    import sqlite3
    import subprocess
    import time

    from wifisync.transfer.importing import BATCH

    n = 4 * BATCH
    items = [{"id": f"bw-{i}", "type": 1, "name": f"Site {i}", "folderId": None,
              "login": {"username": f"user{i}", "password": f"pw{i}", "uris": []}}
             for i in range(n)]
    src = tmp_path / "big.json"
    src.write_text(json.dumps({"encrypted": False, "folders": [], "items": items}))
    c = initialised_cli
    db_path = c.home / "data" / "vault.db"
    base = sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM records").fetchone()[0]

    def stored() -> int:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT COUNT(*) FROM records").fetchone()[0]) - base
        finally:
            db.close()

    proc = subprocess.Popen(c.argv("import", str(src)), env=c.env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while stored() < BATCH and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    partial = stored()
    assert 0 < partial < n, "the kill came too late to cut the import"
    assert partial % BATCH == 0, f"{partial} records: a batch was half applied"
    assert len(titles(c)) == partial

    again = c.ok("import", str(src))
    assert f"{n - partial} imported, 0 updated, {partial} skipped" in again
    assert titles(c) == sorted(f"Site {i}" for i in range(n))
