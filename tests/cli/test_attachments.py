"""The attachment commands as a user runs them: attach, attachments, get --attachment, detach."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli
from wifisync.model.records import CHUNK_BYTES, Kind


def get_bytes(cli: Cli, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``wifisync get ...`` with binary stdout."""
    return subprocess.run(cli.argv("get", *args), capture_output=True, env=cli.env(),
                          stdin=subprocess.DEVNULL, timeout=120, check=False)


@pytest.fixture
def item(initialised_cli: Cli) -> str:
    return initialised_cli.ok("add", "Passport", "--field", "number=X123").strip()


# Every boundary size goes through the CLI in tests/integration/test_attachments_sync.py.
@pytest.mark.parametrize("size", [0, CHUNK_BYTES + 1])
def test_attach_then_get_gives_back_the_same_bytes(initialised_cli: Cli, item: str,
                                                   tmp_path: Path, size: int) -> None:
    cli = initialised_cli
    data = os.urandom(size)
    src = tmp_path / "scan.bin"
    src.write_bytes(data)
    cli.ok("attach", item, str(src))
    out = get_bytes(cli, item, "--attachment", "scan.bin")
    assert out.returncode == 0 and out.stdout == data, out.stderr
    cli.ok("get", "Passport", "--attachment", "scan.bin", "-o", str(tmp_path / "copy"))
    assert (tmp_path / "copy").read_bytes() == data


def test_attachments_lists_name_size_added_and_json_has_the_contract_keys(
        initialised_cli: Cli, item: str, tmp_path: Path) -> None:
    cli = initialised_cli
    (tmp_path / "codes.pdf").write_bytes(b"%PDF-1.7 recovery codes")
    cli.ok("attach", item, str(tmp_path / "codes.pdf"))
    cli.ok("attach", item, str(tmp_path / "codes.pdf"), "--name", "backup copy.pdf")
    listed = json.loads(cli.ok("attachments", item, "--json"))
    digest = hashlib.sha256(b"%PDF-1.7 recovery codes").hexdigest()
    assert [set(a) for a in listed] == [{"name", "size", "sha256", "added"}] * 2
    assert [(a["name"], a["size"], a["sha256"]) for a in listed] == [
        ("backup copy.pdf", 23, digest), ("codes.pdf", 23, digest)]
    assert listed[0]["added"].endswith("Z")
    text = cli.ok("attachments", item)
    assert "codes.pdf" in text and "23 B" in text and listed[1]["added"][:10] in text
    shown = cli.ok("show", item)
    assert "attachments:" in shown and "codes.pdf  (23 B)" in shown
    assert [a["name"] for a in json.loads(cli.ok("show", item, "--json"))["attachments"]] == [
        "backup copy.pdf", "codes.pdf"]
    cli.ok("detach", item, "backup copy.pdf")
    assert [a["name"] for a in json.loads(cli.ok("attachments", item, "--json"))] == [
        "codes.pdf"]
    assert "no attachment 'gone'" in cli.fails("detach", item, "gone", code=2)


def test_attach_from_stdin_needs_a_name_and_works_with_password_stdin(
        initialised_cli: Cli, item: str) -> None:
    cli = initialised_cli
    assert "--name" in cli.fails("attach", item, "-", code=2)
    data = os.urandom(CHUNK_BYTES + 100)
    r = subprocess.run(cli.argv("--password-stdin", "attach", item, "-", "--name", "s.bin"),
                       input=cli.password.encode() + b"\n" + data,  # type: ignore[union-attr]
                       capture_output=True, env=cli.env({"WIFISYNC_PASSWORD": None}),
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert get_bytes(cli, item, "--attachment", "s.bin").stdout == data


def test_get_refuses_to_overwrite_without_force(initialised_cli: Cli, item: str,
                                                 tmp_path: Path) -> None:
    cli = initialised_cli
    (tmp_path / "a.txt").write_bytes(b"new")
    cli.ok("attach", item, str(tmp_path / "a.txt"))
    target = tmp_path / "keep.txt"
    target.write_bytes(b"mine")
    assert "exists; give --force" in cli.fails("get", item, "--attachment", "a.txt", "-o",
                                                str(target), code=2)
    assert target.read_bytes() == b"mine"
    cli.ok("get", item, "--attachment", "a.txt", "-o", str(target), "--force")
    assert target.read_bytes() == b"new"
    assert "no attachment 'nope'" in cli.fails("get", item, "--attachment", "nope", code=2)


def test_a_tampered_chunk_fails_in_one_line_naming_the_attachment_with_no_output(
        initialised_cli: Cli, item: str, tmp_path: Path) -> None:
    cli = initialised_cli
    (tmp_path / "scan.bin").write_bytes(os.urandom(3 * CHUNK_BYTES))
    cli.ok("attach", item, str(tmp_path / "scan.bin"))
    db = sqlite3.connect(cli.home / "data" / "vault.db")
    n, data = db.execute("SELECT n, data FROM records WHERE kind = ? ORDER BY seq DESC",
                         (int(Kind.CHUNK),)).fetchone()
    tampered = bytearray(data)
    tampered[-100] ^= 0xFF
    db.execute("UPDATE records SET data = ? WHERE n = ?", (bytes(tampered), n))
    db.commit()
    db.close()
    r = get_bytes(cli, item, "--attachment", "scan.bin")
    assert r.returncode == 1 and r.stdout == b""
    [line] = r.stderr.decode().splitlines()
    assert line.startswith("wifisync: attachment 'scan.bin' cannot be read: chunk 3 of 3")
    out = tmp_path / "out.bin"
    assert "'scan.bin'" in cli.fails("get", item, "--attachment", "scan.bin", "-o", str(out))
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["home", "scan.bin"]


def test_the_size_limit_is_a_config_key_with_a_clear_error(initialised_cli: Cli, item: str,
                                                            tmp_path: Path) -> None:
    cli = initialised_cli
    config = cli.home / "config" / "config.toml"
    config.write_text(config.read_text() + "attachment_max_mib = 1\n")
    (tmp_path / "big.bin").write_bytes(bytes(1024 * 1024 + 1))
    line = cli.fails("attach", item, str(tmp_path / "big.bin"), code=2)
    assert "larger than the attachment limit of 1 MiB" in line
    assert "attachment_max_mib" in line
    assert json.loads(cli.ok("attachments", item, "--json")) == []
    assert "No such file" in cli.fails("attach", item, str(tmp_path / "missing.bin"))


def test_get_options_of_fields_and_of_attachments_do_not_mix(initialised_cli: Cli,
                                                              item: str) -> None:
    cli = initialised_cli
    assert "--clip copies a field" in cli.fails("get", item, "--attachment", "a", "--clip",
                                                code=2)
    assert "go with --attachment" in cli.fails("get", item, "-o", "x", code=2)
