"""Fixtures shared by the suite: the real ``wifisync`` CLI run in a subprocess on a temp home."""

from __future__ import annotations

import compileall
import py_compile
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab import Lab, lab, netns_unavailable_reason
from wifisync import harness
from wifisync.model import crypto

REPO = harness.PACKAGE_ROOT
PASSWORD = "correct horse battery staple"
# Argon2id at the lowest allowed cost keeps each CLI call fast; the format is unchanged.
FAST_CONFIG = "[vault]\nkdf_opslimit = 1\n"


@pytest.fixture(autouse=True, scope="session")
def compiled_package() -> None:
    """Byte-code for the package once: the hundreds of CLI and daemon processes the suite
    starts then load it instead of each compiling every module again (where
    PYTHONDONTWRITEBYTECODE is set, as on this machine, a third of a CLI call's CPU).

    Checked against a hash of the source, not its mtime: a file edited within the second it
    was compiled in (a rebase during a run) is never run from stale byte-code."""
    compileall.compile_dir(REPO / "wifisync", quiet=1, force=True,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)


@pytest.fixture(autouse=True, scope="session")
def low_kdf_floor() -> Iterator[None]:
    """In-process tests use Argon2id at 8 KiB for speed; CLI and daemon children keep the floor.

    The floor's own tests (tests/model/test_crypto.py) raise it back.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(crypto, "KDF_FLOOR_MEMLIMIT", 8192)
        yield


@dataclass
class Cli(harness.Cli):
    """The harness's CLI runner with the suite's password and its checks of failures."""

    password: str | None = PASSWORD

    def fails(self, *args: str, code: int = 1, **kw: object) -> str:
        """Run a command that must fail with ``code`` and one clean line; returns that line."""
        r = self.run(*args, **kw)  # type: ignore[arg-type]
        assert r.returncode == code, (
            f"wifisync {' '.join(args)}: want {code}, got {r.returncode}: {r.stdout}{r.stderr}")
        assert "Traceback" not in r.stderr, r.stderr
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("wifisync: "), r.stderr
        return lines[0]

    def init(self, name: str = "test-device", fast: bool = True) -> str:
        """``wifisync init``; returns the device ID. ``fast`` writes the cheapest KDF config."""
        if fast:
            self.home.joinpath("config").mkdir(parents=True, exist_ok=True)
            self.home.joinpath("config", "config.toml").write_text(FAST_CONFIG)
        return self.ok("init", "--name", name).strip()


@pytest.fixture
def make_cli(tmp_path: Path) -> Callable[[str], Cli]:
    """Factory of CLI runners, one temp home per name (several devices in one test)."""

    def make(name: str = "home") -> Cli:
        return Cli(tmp_path / name)

    return make


@pytest.fixture
def cli(make_cli: Callable[[str], Cli]) -> Cli:
    """A CLI runner on an empty, not yet initialised home."""
    return make_cli("home")


@pytest.fixture(scope="session")
def initialised_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One home where ``wifisync init`` ran, made once per session and copied per test."""
    template = Cli(tmp_path_factory.mktemp("template") / "home")
    template.init()
    return template.home


@pytest.fixture(scope="session")
def founder_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One home where ``wifisync init --name dev0`` ran, made once and copied by the
    integration tests' ``devices`` (their first device)."""
    founder = Cli(tmp_path_factory.mktemp("founder") / "dev0")
    founder.init("dev0")
    return founder.home


@pytest.fixture
def initialised_cli(cli: Cli, initialised_template: Path) -> Cli:
    """A CLI runner on a home where ``wifisync init`` has run (device "test-device").

    A copy of one session-wide home, so the device ID is the same in every test; for
    several distinct devices in one test use ``make_cli(name).init()``.
    """
    shutil.copytree(initialised_template, cli.home)
    return cli


@pytest.fixture
def netns_lab() -> Iterator[Lab]:
    """A private network-namespace lab (tests/lab.py); skips where `ip netns` is not permitted."""
    reason = netns_unavailable_reason()
    if reason is not None:
        pytest.skip(f"netns lab unavailable: {reason}")
    with lab() as built:
        yield built


@pytest.fixture
def synced_files(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the files the SQLite store fsyncs from now on, in order."""
    from wifisync.store import sqlite

    synced: list[str] = []
    real_fsync = sqlite.os.fsync

    def fsync(fd: int) -> None:
        synced.append(Path(f"/proc/self/fd/{fd}").readlink().name)
        real_fsync(fd)

    monkeypatch.setattr(sqlite.os, "fsync", fsync)
    return synced
