"""The lean path of `get` and `list`: same home, same grammar, and it steps aside when unsure."""

from __future__ import annotations

from pathlib import Path

import pytest

from wifisync.cli.fast import command_of, run, runtime_dir
from wifisync.home import Home


def test_runtime_dir_is_the_homes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    assert runtime_dir(str(tmp_path)) == str(Home.locate(str(tmp_path)).runtime_dir)
    monkeypatch.setenv("WIFISYNC_HOME", str(tmp_path / "env"))
    assert runtime_dir(None) == str(Home.locate(None).runtime_dir)
    monkeypatch.delenv("WIFISYNC_HOME")
    assert runtime_dir(None) == str(Home.locate(None).runtime_dir)


def test_command_is_the_first_word_after_global_options() -> None:
    assert command_of(["--home", "get", "list"]) == "list"
    assert command_of(["--home=x", "--password-stdin", "get", "y"]) == "get"
    assert command_of(["--password-stdin"]) is None


@pytest.mark.parametrize("argv", [
    ["--home", "H", "get", "x", "--attachment", "a"],  # an option of the full CLI only
    ["--home", "H", "get"],  # a usage error: the full parser words it
    ["--home", "H", "show", "x"],
    ["--home", "H", "get", "x", "--help"],
    ["--home", "H", "get", "x"],  # no agent in H: the full CLI asks for the password
])
def test_falls_back_to_the_full_cli(argv: list[str], tmp_path: Path) -> None:
    argv = [str(tmp_path) if a == "H" else a for a in argv]
    assert run(argv) is None
