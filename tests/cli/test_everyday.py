"""get, generate, code, list search, lookup, trash and the safety messages, as a user runs them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import struct
import time
from pathlib import Path

import pytest

from tests.conftest import Cli
from wifisync.model.identity import DeviceIdentity
from wifisync.vault.passwords import SYMBOLS, wordlist

TOTP_SECRET = "JBSWY3DPEHPK3PXP"


def test_get_prints_exactly_the_value(initialised_cli: Cli) -> None:
    c = initialised_cli
    c.ok("add", "Home router", "--field", "username=admin", "--field", "password=p a$s\\w",
         "--field", "notes=line 1\nline 2")
    assert c.ok("get", "Home router") == "p a$s\\w\n"
    assert c.ok("get", "home ROUTER", "--field", "username") == "admin\n"
    assert c.ok("get", "home router", "--field", "notes") == "line 1\nline 2\n"
    line = c.fails("get", "Home router", "--field", "pin")
    assert "no field 'pin'" in line and "notes, password, username" in line


def test_lookup_names_candidates_and_the_minimum_prefix(initialised_cli: Cli) -> None:
    c = initialised_cli
    one = c.ok("add", "Mail").strip()
    two = c.ok("add", "mail").strip()
    line = c.fails("show", "MAIL")
    assert "matches 2 items" in line and one[:12] in line and two[:12] in line
    assert c.ok("show", "Mail").startswith(f"id:      {one}")  # exact case wins
    assert "at least 4 characters" in c.fails("show", one[:3])
    assert c.ok("show", one[:4].upper()).startswith(f"id:      {one}")
    assert "no item matches 'Bank'" in c.fails("show", "Bank")


def test_list_searches_titles_tags_usernames_and_urls(initialised_cli: Cli) -> None:
    c = initialised_cli
    c.ok("add", "Home router", "--field", "url=http://192.168.1.1", "--tag", "Network")
    c.ok("add", "Mail", "--field", "username=alice@example.org", "--tag", "web")
    c.ok("add", "Visa", "--type", "card", "--tag", "money")

    def titles(*args: str) -> list[str]:
        return [i["title"] for i in json.loads(c.ok("list", *args, "--json"))]

    assert titles("ROUTER") == ["Home router"]
    assert titles("192.168") == ["Home router"]
    assert titles("ALICE") == ["Mail"]
    assert titles("netw") == ["Home router"]
    assert titles("--tag", "network") == ["Home router"]
    assert titles("--type", "card") == ["Visa"]
    assert titles("i", "--type", "login") == ["Mail"]
    r = c.run("list", "nothing-like-it")
    assert r.returncode == 0 and r.stdout == "" and "no item matches (of 3 items)" in r.stderr


def test_generate_uses_every_class_and_the_wordlist(cli: Cli) -> None:
    out = cli.ok("generate").rstrip("\n")
    assert len(out) == 20 and any(ch in SYMBOLS for ch in out)
    assert any(ch.isdigit() for ch in out) and any(ch.isupper() for ch in out)
    short = cli.ok("generate", "--length", "12", "--no-symbols").rstrip("\n")
    assert len(short) == 12 and short.isalnum()
    words = cli.ok("generate", "--words", "5").rstrip("\n")
    pool = set(wordlist())
    assert len(pool) >= 7776
    # A few EFF words hold a dash themselves; rejoin greedily against the list.
    parts, found = words.split("-"), 0
    while parts:
        for n in (2, 1):
            if "-".join(parts[:n]) in pool:
                parts, found = parts[n:], found + 1
                break
        else:
            pytest.fail(f"{words!r} holds a word not in the list")
    assert found == 5
    assert cli.ok("generate") != cli.ok("generate")
    assert "--length" in cli.fails("generate", "--length", "2", code=2)


def test_add_and_edit_generate_a_password_without_showing_it(initialised_cli: Cli) -> None:
    c = initialised_cli
    r = c.run("add", "Bank", "--generate", "password", "--words", "6")
    assert r.returncode == 0 and len(r.stdout.strip()) == 32  # the ID alone
    first = c.ok("get", "Bank").rstrip("\n")
    assert first.count("-") >= 5 and first not in r.stdout + r.stderr
    assert "hidden" in c.ok("show", "Bank")  # masked like a --secret
    r = c.run("edit", "Bank", "--generate", "password", "--length", "30")
    assert r.returncode == 0 and r.stdout == ""
    second = c.ok("get", "Bank").rstrip("\n")
    assert len(second) == 30 and second != first and second not in r.stderr


def independent_totp(secret_b32: str, at: float, digits: int, period: int, digest: str) -> str:
    key = base64.b32decode(secret_b32)
    mac = hmac.new(key, struct.pack(">Q", int(at) // period), getattr(hashlib, digest)).digest()
    o = mac[-1] & 15
    return str((int.from_bytes(mac[o:o + 4], "big") & 0x7FFFFFFF) % 10**digits).zfill(digits)


def test_code_prints_the_current_totp(initialised_cli: Cli) -> None:
    c = initialised_cli
    uri = f"otpauth://totp/Mail:alice?secret={TOTP_SECRET}&algorithm=SHA256&digits=8&period=60"
    c.ok("add", "Mail", "--field", f"totp={uri}")
    c.ok("add", "Bare", "--field", "totp=jbsw y3dp ehpk 3pxp")
    before = time.time()
    r = c.run("code", "mail")
    after = time.time()
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip("\n") in {independent_totp(TOTP_SECRET, t, 8, 60, "sha256")
                                     for t in (before, after)}
    assert r.stderr.startswith("valid for ") and "second" in r.stderr
    out = c.ok("code", "Bare").rstrip("\n")
    assert out in {independent_totp(TOTP_SECRET, t, 6, 30, "sha1")
                   for t in (before, time.time())}
    c.ok("add", "No code")
    assert "no TOTP secret" in c.fails("code", "No code")
    c.ok("add", "Broken", "--field", "totp=otpauth://totp/x?secret=!!!")
    assert "not base32" in c.fails("code", "Broken")


def test_trash_and_undelete_bring_back_every_field(initialised_cli: Cli) -> None:
    c = initialised_cli
    item = c.ok("add", "Old mail", "--field", "password=p1", "--field", "user=bob",
                "--tag", "web").strip()
    c.ok("rm", "Old mail")
    assert "Old mail" not in c.ok("list")
    trash = json.loads(c.ok("trash", "--json"))
    assert [(t["id"], t["title"], t["by_name"]) for t in trash] == [
        (item, "Old mail", "test-device")]
    assert "Old mail" in c.ok("trash") and "deleted by" in c.ok("trash")
    history = json.loads(c.ok("history", "old mail", "--json"))  # readable while deleted
    assert [h["deleted"] for h in history] == [False, True]
    assert c.ok("undelete", "old MAIL").startswith(f"restored {item}")
    shown = json.loads(c.ok("show", item, "--json"))
    assert shown["fields"] == {"password": "p1", "user": "bob"} and shown["tags"] == ["web"]
    assert c.ok("trash") == ""
    assert "no item matches" in c.fails("undelete", "Old mail")


def test_show_indents_multi_line_values(initialised_cli: Cli) -> None:
    c = initialised_cli
    c.ok("add", "Note", "--type", "note", "--field", "notes=first\nsecond\nthird")
    out = c.ok("show", "Note")
    assert "  notes: first\n         second\n         third\n" in out


def test_a_weak_master_password_needs_allow_weak(cli: Cli) -> None:
    cli.password = "abc123"
    line = cli.fails("init", code=2)
    assert "too easy to guess" in line and "--allow-weak" in line
    assert not (cli.home / "data" / "vault.db").exists()
    r = cli.run("init", "--allow-weak")
    assert r.returncode == 0 and "warning: password strength: very weak" in r.stderr


def test_a_joined_device_without_items_says_to_start_the_daemon(initialised_cli: Cli,
                                                                 make_cli: object) -> None:
    joined = make_cli("joined")  # type: ignore[operator]
    (joined.home / "data").mkdir(parents=True)
    shutil.copy(initialised_cli.home / "data" / "vault.db", joined.home / "data" / "vault.db")
    DeviceIdentity.generate().save(joined.home / "data")  # holds the vault, wrote nothing
    r = joined.run("list")
    assert r.returncode == 0 and "has not received the vault's items yet" in r.stderr
    assert "wifisync daemon" in r.stderr
    assert "no items yet" in initialised_cli.run("list").stderr


def test_export_to_stdout_and_no_silent_overwrite(initialised_cli: Cli, tmp_path: Path) -> None:
    c = initialised_cli
    c.ok("add", "Mail", "--field", "password=p")
    r = c.run("export", "-", "--plaintext")
    assert r.returncode == 0 and json.loads(r.stdout)["items"][0]["title"] == "Mail"
    assert "1 item exported" in r.stderr and not Path("-").exists()
    target = tmp_path / "out.json"
    target.write_text("keep me")
    assert "add --force" in c.fails("export", str(target), "--plaintext")
    assert target.read_text() == "keep me"
    assert "1 item exported" in c.ok("export", str(target), "--plaintext", "--force")
    assert json.loads(target.read_text())["items"][0]["title"] == "Mail"
    backup = tmp_path / "b.wsb"
    backup.write_text("keep me")
    assert "add --force" in c.fails("backup", str(backup))
    assert backup.read_text() == "keep me"
    c.ok("backup", str(backup), "--force")
    assert backup.read_bytes() != b"keep me"


def test_csv_export_imports_back_losslessly(initialised_cli: Cli, make_cli: object,
                                            tmp_path: Path) -> None:
    c = initialised_cli
    c.ok("add", "Mail", "--field", "username=alice", "--field", "title=a field named title",
         "--field", "notes=line 1\nline \"2\", with comma", "--tag", "web", "--tag", "a;b")
    c.ok("add", "Card", "--type", "card", "--secret", "pin", input="1234\n")
    c.ok("add", "Empty note", "--type", "note")
    csv_file = tmp_path / "export.csv"
    c.ok("export", str(csv_file), "--plaintext", "--format", "csv")
    other = make_cli("other")  # type: ignore[operator]
    other.init()
    out = other.ok("import", str(csv_file))
    assert out.startswith("wifisync-csv: 3 imported")

    def everything(cli: Cli) -> list[dict[str, object]]:
        """Titles, types, tags, fields with their hidden flags: the lossless JSON export."""
        items = json.loads(cli.ok("export", "-", "--plaintext"))["items"]
        return [{k: v for k, v in i.items() if k not in ("id", "source")} for i in items]

    assert everything(other) == everything(c)
    assert other.ok("import", str(csv_file)).startswith("wifisync-csv: 0 imported")


def test_malformed_csv_rows_are_skipped_and_listed(initialised_cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "bitwarden.csv"
    src.write_text(
        "folder,favorite,type,name,notes,fields,reprompt,login_uri,login_username,"
        "login_password,login_totp\n"
        ",,login,Good,,,0,https://a.example,alice,pw1,\n"
        ",,login,Trunc\n"
        f",,login,With code,,,0,,bob,pw2,otpauth://totp/x?secret={TOTP_SECRET}\n")
    out = initialised_cli.ok("import", str(src))
    assert "2 imported" in out and "line 3:" in out and "truncated" in out
    titles = [i["title"] for i in json.loads(initialised_cli.ok("list", "--json"))]
    assert sorted(titles) == ["Good", "With code"]
    code = initialised_cli.ok("code", "With code").strip()  # the TOTP column became `totp`
    assert len(code) == 6 and code.isdigit()


@pytest.fixture
def fake_clipboard(tmp_path: Path) -> dict[str, str]:
    """wl-copy / wl-paste stand-ins on PATH that keep the clipboard in a file."""
    bin_dir, clip = tmp_path / "bin", tmp_path / "clip"
    bin_dir.mkdir()
    (bin_dir / "wl-copy").write_text(
        "#!/bin/sh\n"
        'echo "$0 $*" >> "$FAKE_CLIP_DIR/argv.log"\n'
        'if [ "$1" = "--clear" ]; then : > "$FAKE_CLIP_DIR/clip"; '
        'else cat > "$FAKE_CLIP_DIR/clip"; fi\n')
    (bin_dir / "wl-paste").write_text('#!/bin/sh\ncat "$FAKE_CLIP_DIR/clip"\n')
    for tool in ("wl-copy", "wl-paste"):
        (bin_dir / tool).chmod(0o755)
    clip.write_text("")
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "WAYLAND_DISPLAY": "fake",
            "DISPLAY": None, "FAKE_CLIP_DIR": str(tmp_path)}  # type: ignore[dict-item]


def wait_for(predicate: object, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_clip_copies_and_clears_only_its_own_value(initialised_cli: Cli, tmp_path: Path,
                                                   fake_clipboard: dict[str, str]) -> None:
    c = initialised_cli
    c.ok("add", "Mail", "--field", "password=Clip-Secret-4410")
    clip = tmp_path / "clip"
    r = c.run("get", "Mail", "--clip", "--clear", "1", env=fake_clipboard)
    assert r.returncode == 0 and r.stdout == "" and "cleared in 1 s" in r.stderr
    assert clip.read_text() == "Clip-Secret-4410"
    # The detached clearer holds the value now: not in any process's argv or environment.
    clearers = 0
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        clearers += b"wifisync.cli.clipboard" in cmdline
        assert b"Clip-Secret-4410" not in cmdline + environ, proc
    assert clearers >= 1 or clip.read_text() == ""
    assert wait_for(lambda: clip.read_text() == "")  # cleared by the detached child
    # Something else copied meanwhile is left alone.
    c.ok("get", "Mail", "--clip", "--clear", "1", env=fake_clipboard)
    clip.write_text("copied by the user later")
    time.sleep(2.5)
    assert clip.read_text() == "copied by the user later"
    assert "Clip-Secret-4410" not in (tmp_path / "argv.log").read_text()


def test_clip_without_a_clipboard_is_one_line(initialised_cli: Cli, tmp_path: Path) -> None:
    c = initialised_cli
    c.ok("add", "Mail", "--field", "password=p")
    line = c.fails("get", "Mail", "--clip", env={"WAYLAND_DISPLAY": None, "DISPLAY": None,
                                                 "PATH": str(tmp_path)})
    assert "no clipboard" in line
