"""`wifisync service install/uninstall`: the right file, the right commands, said plainly."""

from __future__ import annotations

import os
import plistlib
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO, Cli
from tests.integration.conftest import Device
from wifisync import service

# Stands in for the user's service manager (not the thing under test): records its calls.
STUB_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "$0.calls"
"""


def _env(tmp_path: Path, path: Path) -> dict[str, str | None]:
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PATH": str(path)}


def test_the_repository_copies_are_the_shipped_templates() -> None:
    for name in (service.UNIT_NAME, service.PLIST_NAME):
        assert (REPO / "systemd" / name).read_text() == service.template(name)


def test_install_without_a_user_manager_writes_the_unit_and_says_the_commands(
        cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    out = cli.ok("service", "install", "--now", env=_env(tmp_path, empty))
    unit = (tmp_path / "xdg/systemd/user/wifisync.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv == [sys.executable, "-m", "wifisync", "--home", str(cli.home), "daemon"]
    assert f"ReadWritePaths=-{cli.home}/data -{cli.home}/run" in unit
    assert "network-online" not in unit and "WatchdogSec=" in unit
    assert "StartLimitBurst=" in unit and "StartLimitIntervalSec=" in unit
    assert "systemctl: systemctl not found" in out
    assert "run these yourself:\n  systemctl --user daemon-reload\n  systemctl --user enable " \
           "wifisync.service\n  systemctl --user restart wifisync.service" in out
    assert "loginctl enable-linger" in out
    for d in ("data", "run"):  # the unit makes them writable, so they must exist
        assert (cli.home / d).is_dir()


def test_install_and_uninstall_drive_systemctl_when_it_answers(cli: Cli, tmp_path: Path
                                                               ) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "systemctl"
    stub.write_text(STUB_SYSTEMCTL)
    stub.chmod(0o755)
    env = _env(tmp_path, bin_dir)
    out = cli.ok("service", "install", "--now", env=env)
    assert "ran systemctl --user daemon-reload" in out
    assert "ran systemctl --user enable wifisync.service" in out
    assert "ran systemctl --user restart wifisync.service" in out
    assert "run these yourself" not in out
    out = cli.ok("service", "uninstall", env=env)
    assert "ran systemctl --user disable --now wifisync.service" in out
    assert not (tmp_path / "xdg/systemd/user/wifisync.service").exists()
    assert (bin_dir / "systemctl.calls").read_text().splitlines() == [
        "--user daemon-reload", "--user enable wifisync.service",
        "--user restart wifisync.service",
        "--user disable --now wifisync.service", "--user daemon-reload"]
    assert "not installed" in cli.ok("service", "uninstall", env=env)


def test_a_path_with_spaces_and_percent_survives_systemd_quoting() -> None:
    unit = service.render_unit(["/opt/my tools/wifisync", "--home", "/srv/100%", "daemon"],
                               None)
    line = next(x for x in unit.splitlines() if x.startswith("ExecStart="))
    assert line == 'ExecStart="/opt/my tools/wifisync" --home /srv/100%% daemon'


def test_launchd_agent_has_absolute_paths_and_a_private_log(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    calls: list[list[str]] = []

    def fake_launchctl(argv: list[str]) -> tuple[bool, str]:
        calls.append(argv)
        return True, ""

    report = service.install(tmp_path / "home", now=True, system="Darwin", run=fake_launchctl)
    path = tmp_path / "Library/LaunchAgents/com.wifisync.daemon.plist"
    agent = plistlib.loads(path.read_bytes())
    assert agent["ProgramArguments"][-3:] == ["--home", str(tmp_path / "home"), "daemon"]
    assert os.path.isabs(agent["ProgramArguments"][0])
    log = Path(agent["StandardErrorPath"])
    assert log.parent == tmp_path / "Library/Logs/wifisync"
    assert log.parent.stat().st_mode & 0o077 == 0
    assert calls[-1] == ["launchctl", "bootstrap", f"gui/{os.getuid()}", str(path)]
    assert any("bootstrap" in line for line in report.lines())


def test_a_custom_xdg_data_home_is_pinned_and_made_writable(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    unit = service.render_unit(["/usr/bin/wifisync", "daemon"], None)
    assert f"ReadWritePaths=-{tmp_path}/data/wifisync\n" in unit
    assert f"ExecStart=/usr/bin/wifisync daemon\nEnvironment=XDG_DATA_HOME={tmp_path}/data\n" \
        in unit
    monkeypatch.delenv("XDG_DATA_HOME")
    default = service.render_unit(["/usr/bin/wifisync", "daemon"], None)
    assert "Environment=XDG" not in default
    assert "Environment=PYTHONMALLOC=malloc\n" in default  # no second start for the allocator
    assert "ReadWritePaths=-%h/.local/share/wifisync\n" in default


def test_install_now_does_not_start_the_service_beside_a_daemon_run_by_hand(
        devices: Callable[..., list[Device]], tmp_path: Path) -> None:
    (a,) = devices(1)
    a.start()
    assert a.proc is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "systemctl"
    stub.write_text(STUB_SYSTEMCTL)
    stub.chmod(0o755)
    out = a.cli.ok("service", "install", "--now", env=_env(tmp_path, bin_dir))
    assert f"not started: a daemon already runs for this home outside the service (pid " \
           f"{a.proc.pid}); stop it (kill {a.proc.pid})" in out
    assert (bin_dir / "systemctl.calls").read_text().splitlines() == ["--user daemon-reload"]
