"""Attachments through every door: each importer, plaintext export, backup and restore."""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.memory import cli_peak_kib
from tests.transfer import samples
from tests.transfer.conftest import PASSWORD, new_vault
from wifisync.home import Home
from wifisync.model.crypto import KdfParams
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import CHUNK_BYTES
from wifisync.store import SqliteStore
from wifisync.transfer import importers
from wifisync.transfer.backup import make_backup, restore_backup
from wifisync.transfer.importing import import_items
from wifisync.vault import attachments as att
from wifisync.vault.unlocked import Vault

SIZES = (0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1)
FILES = {f"file-{n}.bin": os.urandom(n) for n in SIZES}


def imported(vault: Vault, data: bytes, path: Path | None = None, password: str | None = None,
             limit: int = 64 * 1024 * 1024) -> list[str]:
    module = importers.importer(None, data)
    parsed = importers.parse(data, module.FORMAT, password, path=path)
    return import_items(vault, parsed, module.FAMILY, max_attachment_bytes=limit).lines()


def files_of(vault: Vault, title: str) -> dict[str, bytes]:
    [view] = [v for v in vault.items() if v.state.title == title]
    out = {}
    for a in att.attachments(vault, view.id):
        buf = io.BytesIO()
        att.write_to(vault, a, buf)
        out[a.name] = buf.getvalue()
    return out


def bitwarden_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("data.json", json.dumps(samples.BITWARDEN_JSON))
        for name, content in files.items():
            z.writestr(f"attachments/i1/{name}", content)
    return buf.getvalue()


def test_bitwarden_zip_attachments_land_on_their_item_and_are_counted() -> None:
    vault = new_vault()
    lines = imported(vault, bitwarden_zip(FILES))
    assert f"attachments: {len(FILES)} imported, 0 unchanged" in lines
    assert not any("not imported" in line for line in lines)
    assert files_of(vault, "Home Router") == FILES
    # importing the same export again changes nothing
    assert f"attachments: 0 imported, {len(FILES)} unchanged" in imported(
        vault, bitwarden_zip(FILES))


def test_bitwarden_json_with_its_attachments_folder(tmp_path: Path) -> None:
    export = tmp_path / "bitwarden.json"
    export.write_text(json.dumps(samples.BITWARDEN_JSON))
    folder = tmp_path / "attachments" / "i3"
    folder.mkdir(parents=True)
    (folder / "card-front.jpg").write_bytes(FILES["file-262145.bin"])
    vault = new_vault()
    assert "attachments: 1 imported, 0 unchanged" in imported(vault, export.read_bytes(), export)
    [card] = [v.state.title for v in vault.items() if v.state.type == "card"]
    assert files_of(vault, card) == {"card-front.jpg": FILES["file-262145.bin"]}


def test_1pux_files_land_on_the_item_that_refers_to_them() -> None:
    document = {"uuid": "d1", "categoryUuid": "006", "overview": {"title": "Passport scan"},
                "details": {"documentAttributes": {"fileName": "scan.pdf",
                                                   "documentId": "doc1"}}}
    data = samples.onepux([document], files={"doc1__scan.pdf": FILES["file-262143.bin"]})
    vault = new_vault()
    lines = imported(vault, data)
    assert "attachments: 1 imported, 0 unchanged" in lines
    assert files_of(vault, "Passport scan") == {"scan.pdf": FILES["file-262143.bin"]}


def test_kdbx_binaries_become_attachments(kdbx_bytes: bytes) -> None:
    vault = new_vault()
    lines = imported(vault, kdbx_bytes, password=samples.KDBX_PASSWORD)
    assert "attachments: 1 imported, 0 unchanged" in lines
    assert not any("router.cfg" in line for line in lines[1:-1] if "attachments" not in line)
    assert files_of(vault, "Home Router") == {"router.cfg": b"config-backup"}


def test_an_attachment_over_the_limit_is_reported_and_the_rest_imported() -> None:
    vault = new_vault()
    lines = imported(vault, bitwarden_zip({"small.txt": b"ok", "huge.bin": bytes(2048)}),
                     limit=1024)
    assert "attachments: 1 imported, 0 unchanged" in lines
    assert any("huge.bin" in line and "larger than the attachment limit" in line
               for line in lines)
    assert files_of(vault, "Home Router") == {"small.txt": b"ok"}


def test_plaintext_export_writes_attachments_beside_and_imports_back(
        initialised_cli: Cli, make_cli: object, tmp_path: Path) -> None:
    cli = initialised_cli
    item = cli.ok("add", "Passport").strip()
    with opened(cli) as vault:  # the CLI's attach is tested in tests/cli
        for name, data in FILES.items():
            att.attach(vault, bytes.fromhex(item), name,
                       att.Source.of_stream(io.BytesIO(data)), 2**20)
    out = tmp_path / "export" / "vault.json"
    out.parent.mkdir()
    said = cli.ok("export", "--plaintext", str(out))
    assert f"{len(FILES)} attachments to {out.parent / 'vault'}/" in said
    for name, data in FILES.items():
        assert (out.parent / "vault" / item / name).read_bytes() == data
    other = make_cli("other")  # type: ignore[operator]
    other.init()
    summary = other.ok("import", str(out))
    assert f"attachments: {len(FILES)} imported, 0 unchanged" in summary
    with opened(other) as vault:
        assert files_of(vault, "Passport") == FILES


@contextlib.contextmanager
def opened(cli: Cli) -> Iterator[Vault]:
    """The vault of a CLI's home, unlocked in this process."""
    home = Home.locate(str(cli.home))
    store = SqliteStore(home.store_file)
    try:
        yield Vault.unlock(store, DeviceIdentity.load(home.data_dir), cli.password or "")
    finally:
        store.close()


def test_backup_and_restore_carry_attachments(tmp_path: Path) -> None:
    vault = new_vault()
    item = vault.add("Passport")
    files = {**FILES, "big.bin": os.urandom(20 * 1024 * 1024)}
    for name, data in files.items():
        att.attach(vault, item, name, att.Source.of_stream(io.BytesIO(data)), 64 * 2**20)
    backup = make_backup(vault)
    assert files["big.bin"][:4096] not in backup  # sealed, like every record
    home = Home.locate(str(tmp_path / "restored"))
    restored = restore_backup(backup, home, PASSWORD)
    store = SqliteStore(home.store_file)
    try:
        again = Vault.unlock(store, restored.identity, PASSWORD)
        assert files_of(again, "Passport") == files
    finally:
        store.close()


@pytest.mark.parametrize("file", ["../escape.bin", "/etc/hostname"])
def test_wifisync_json_never_reads_files_outside_its_folder(tmp_path: Path, file: str) -> None:
    doc = {"format": "wifisync-json", "version": 1, "items": [
        {"title": "x", "type": "login", "fields": [], "tags": [],
         "attachments": [{"name": "n", "file": file}]}]}
    (tmp_path / "escape.bin").write_bytes(b"outside")
    export = tmp_path / "sub" / "e.json"
    export.parent.mkdir()
    export.write_text(json.dumps(doc))
    parsed = importers.parse(export.read_bytes(), path=export)
    assert parsed.items[0].attachments == ()
    assert "not found beside the export" in parsed.problems[0].reason


def _peak_kib(cli: Cli, *args: str) -> int:
    return cli_peak_kib(["--home", str(cli.home), *args], cli.env())


def test_backup_and_restore_stream_a_large_attachment(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    home = Home.locate(str(cli.home))
    home.ensure()
    ident = DeviceIdentity.generate()
    ident.save(home.data_dir)
    store = SqliteStore(home.store_file)
    vault = Vault.create(store, ident, "dev", cli.password or "", KdfParams.fresh(1))
    item = vault.add("Passport")
    att.attach(vault, item, "tiny", att.Source.of_stream(io.BytesIO(b"x")), 2**20)
    store.close()
    small = _peak_kib(cli, "backup", str(tmp_path / "small.backup"))
    store = SqliteStore(home.store_file)
    vault = Vault.unlock(store, ident, cli.password or "")
    data = os.urandom(32 * 1024 * 1024)
    att.attach(vault, item, "big", att.Source.of_stream(io.BytesIO(data)), 64 * 2**20)
    store.close()
    big = _peak_kib(cli, "backup", str(tmp_path / "big.backup"))
    restored = Cli(tmp_path / "restored")
    small_restore = _peak_kib(Cli(tmp_path / "r0"), "restore", str(tmp_path / "small.backup"))
    big_restore = _peak_kib(restored, "restore", str(tmp_path / "big.backup"))
    assert (big - small) / 1024 < 16 and (big_restore - small_restore) / 1024 < 16, (
        small, big, small_restore, big_restore)
    out = tmp_path / "big.out"
    restored.ok("get", "Passport", "--attachment", "big", "-o", str(out))
    assert out.read_bytes() == data
