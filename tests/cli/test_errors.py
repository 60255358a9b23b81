"""User mistakes: one clear line on stderr, the right exit status, and nothing changed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Cli


def store_rows(home: Path) -> list[tuple[bytes, bytes]]:
    """Every stored record (ID, bytes), to compare a store before and after a command."""
    db = sqlite3.connect(home / "data" / "vault.db")
    try:
        return db.execute("SELECT id, data FROM records ORDER BY n").fetchall()
    finally:
        db.close()


def home_files(home: Path) -> dict[str, bytes]:
    """Every file under a home with its content (SQLite side files left out)."""
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*"))
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


@pytest.mark.parametrize("command", [
    ["list"], ["show", "Mail"], ["add", "Other"], ["edit", "Mail", "--title", "X"],
    ["rm", "Mail"], ["history", "Mail"], ["passwd"],
])
def test_wrong_master_password_changes_nothing(initialised_cli: Cli, command: list[str]
                                               ) -> None:
    c = initialised_cli
    c.ok("add", "Mail", "--field", "password=p")
    before = store_rows(c.home)
    line = c.fails(*command, env={"WIFISYNC_PASSWORD": "not it",
                                  "WIFISYNC_NEW_PASSWORD": "new"})
    assert line == "wifisync: wrong master password"
    assert store_rows(c.home) == before


@pytest.mark.parametrize("command", [
    ["id"], ["list"], ["show", "x"], ["add", "x"], ["edit", "x", "--title", "y"], ["rm", "x"],
    ["history", "x"], ["passwd"],
])
def test_not_initialised_home_says_to_run_init_or_join(cli: Cli, command: list[str]) -> None:
    line = cli.fails(*command)
    assert "run `wifisync init`" in line and "`wifisync join CODE`" in line
    assert not cli.home.exists()


def test_init_twice_is_refused_changing_nothing(initialised_cli: Cli) -> None:
    c = initialised_cli
    c.ok("add", "Mail")
    device_id = c.ok("id")
    before = home_files(c.home)
    rows = store_rows(c.home)
    assert "already" in c.fails("init", "--name", "again")
    assert "already" in c.fails("init", env={"WIFISYNC_PASSWORD": None})
    assert home_files(c.home) == before
    assert store_rows(c.home) == rows
    assert c.ok("id") == device_id


def test_init_refused_when_only_a_store_exists(cli: Cli) -> None:
    (cli.home / "data").mkdir(parents=True)
    (cli.home / "data" / "vault.db").write_bytes(b"")
    assert "already" in cli.fails("init")
    assert not (cli.home / "data" / "device.key").exists()


def test_unknown_item(initialised_cli: Cli) -> None:
    initialised_cli.ok("add", "Mail")
    for command in (["show", "Nope"], ["edit", "Nope", "--title", "x"], ["rm", "Nope"],
                    ["history", "Nope"], ["show", "ffffffffffffffffffffffffffffffff"]):
        assert "no item" in initialised_cli.fails(*command)


def test_ambiguous_item(initialised_cli: Cli) -> None:
    c = initialised_cli
    a = c.ok("add", "Twin").strip()
    b = c.ok("add", "Twin").strip()
    before = store_rows(c.home)
    for command in (["show", "Twin"], ["edit", "Twin", "--title", "x"], ["rm", "Twin"]):
        assert "matches 2 items" in c.fails(*command)
    assert store_rows(c.home) == before
    assert c.ok("show", a, "--json") != c.ok("show", b, "--json")


@pytest.mark.parametrize("bad", ["novalue", "=value", " =x", ""])
def test_malformed_field_is_a_usage_error(initialised_cli: Cli, bad: str) -> None:
    c = initialised_cli
    before = store_rows(c.home)
    assert "NAME=VALUE" in c.fails("add", "Mail", "--field", bad, code=2)
    assert store_rows(c.home) == before


def test_unknown_type_and_option_are_usage_errors(initialised_cli: Cli) -> None:
    c = initialised_cli
    assert "invalid choice" in c.fails("add", "Mail", "--type", "boat", code=2)
    c.fails("list", "--colour", code=2)
    c.fails("frobnicate", code=2)
    c.fails("add", "   ", code=2)


@pytest.mark.parametrize(("content", "expected"), [
    ("[daemon\nlisten = 1", "invalid TOML"),
    ("[daemon]\nlisten = \"abc\"\n", "daemon.listen: expected HOST:PORT, got 'abc'"),
    ("[vault]\nkdf_memlimit_mib = 8\n", "vault.kdf_memlimit_mib: must be at least 64"),
    ("[daemon]\nlisen = \"0.0.0.0:1\"\n", "daemon.lisen: unknown key"),
    ("[colour]\n", "unknown section [colour]"),
])
def test_corrupt_config_names_the_file_and_the_problem(initialised_cli: Cli, content: str,
                                                       expected: str) -> None:
    c = initialised_cli
    config = c.home / "config" / "config.toml"
    config.write_text(content)
    for command in (["list"], ["id"], ["add", "x"]):
        line = c.fails(*command)
        assert line.startswith(f"wifisync: {config}: ") and expected in line, line


def test_toml_syntax_error_names_the_line(initialised_cli: Cli) -> None:
    config = initialised_cli.home / "config" / "config.toml"
    config.write_text("[vault]\nkdf_opslimit = 1\nkdf_memlimit_mib = = 64\n")
    assert "line 3" in initialised_cli.fails("list")


def test_no_password_source_is_a_clear_error(initialised_cli: Cli) -> None:
    line = initialised_cli.fails("list", env={"WIFISYNC_PASSWORD": None})
    assert "--password-stdin" in line and "WIFISYNC_PASSWORD" in line


def test_empty_password_is_refused(cli: Cli) -> None:
    assert "must not be empty" in cli.fails("init", env={"WIFISYNC_PASSWORD": ""})
    assert "must not be empty" in cli.fails("--password-stdin", "init", input="\n")
    assert "no password line" in cli.fails("--password-stdin", "init", input="")
    assert not (cli.home / "data" / "device.key").exists()


def test_a_reader_that_leaves_early_gets_no_traceback(initialised_cli: Cli) -> None:
    """`wifisync list | head`: the pipe closes before the listing is written."""
    import subprocess

    c = initialised_cli
    c.ok("add", "Mail")
    proc = subprocess.Popen(c.argv("list"), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=c.env())
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    proc.wait(timeout=60)
    assert proc.stderr.read() == b""
    assert proc.returncode == 1


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_on_output_is_one_line(initialised_cli: Cli) -> None:
    import subprocess

    c = initialised_cli
    c.ok("add", "Mail")
    with open("/dev/full", "w") as full:
        r = subprocess.run(c.argv("list"), stdin=subprocess.DEVNULL, stdout=full,
                           stderr=subprocess.PIPE, text=True, env=c.env(), timeout=60)
    assert r.returncode == 1
    assert r.stderr == "wifisync: No space left on device\n"


def test_every_file_of_a_home_is_private_to_its_user(cli: Cli) -> None:
    """Whatever the caller's umask, nothing the CLI writes is readable by others."""
    cli.init()  # the test writes config/config.toml itself; the CLI writes data/
    cli.ok("add", "Mail", "--field", "password=p")
    files = list((cli.home / "data").rglob("*"))
    assert files
    for p in files:
        assert p.stat().st_mode & 0o077 == 0, f"{p} is {oct(p.stat().st_mode)}"
