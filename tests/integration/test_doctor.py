"""`wifisync doctor`: one line per check, each failure with its fix; exit 1 when one fails."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tests.integration.conftest import Device, wait_for


def _private(d: Device) -> None:
    """The test harness writes the config with the default umask; a user's CLI would not."""
    for path in d.cli.home.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)


def _install(d: Device, tmp_path: Path) -> dict[str, str | None]:
    """Install the unit into a private XDG_CONFIG_HOME and mark it enabled, as systemctl would."""
    env: dict[str, str | None] = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"),
                                  "PATH": str(tmp_path)}
    d.cli.ok("service", "install", env=env)
    wants = tmp_path / "xdg/systemd/user/default.target.wants"
    wants.mkdir()
    (wants / "wifisync.service").symlink_to("../wifisync.service")
    return env


def test_doctor_passes_when_everything_is_in_place(devices: Callable[..., list[Device]],
                                                   tmp_path: Path) -> None:
    a, b = devices(2)
    b.peers = [a]
    env = _install(a, tmp_path)
    a.start()
    b.start()
    wait_for(lambda: a.connected_to(b), 10, "the session")
    live = b.status()  # B dialed: its skew comes from A's handshake answer
    assert live is not None and abs(live["peers"][0]["clock_skew"]) < 5  # type: ignore[index]
    _private(a)
    r = a.cli.run("doctor", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    names = [re.match(r"(ok  |skip)  ([\w ]+):", line).group(2)  # type: ignore[union-attr]
             for line in lines[:-1]]
    assert names == ["config", "permissions", "store", "membership", "daemon", "service",
                     "port", "multicast", "peers", f"clock {b.name}"]
    assert lines[-1] == "all checks passed"
    assert re.search(r"^ok    peers: 1 of 1 connected", r.stdout, re.M)
    assert re.search(rf"^ok    clock {b.name}: [+-]\d+\.\d s apart$", r.stdout, re.M)
    assert r.stderr == ""


def test_doctor_names_each_failure_with_its_fix(devices: Callable[..., list[Device]],
                                                tmp_path: Path) -> None:
    a, b = devices(2)
    a.cli.home.joinpath("data").chmod(0o755)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    r = a.cli.run("doctor", env=env)
    assert r.returncode == 1
    out = r.stdout
    assert re.search(r"^FAIL  permissions: .*data \(755\).*; fix: chmod", out, re.M), out
    assert re.search(r"^FAIL  daemon: not running; fix: wifisync service install --now", out,
                     re.M), out
    assert re.search(r"^FAIL  service: not installed .*; fix: wifisync service install --now",
                     out, re.M), out
    assert re.search(r"^skip  port: the daemon is not running", out, re.M), out
    assert out.splitlines()[-1] == "3 check(s) failed"

    a.start()
    r = a.cli.run("doctor", env=env)
    assert re.search(rf"^FAIL  peers: 0 of 1 connected.*not connected: {b.name} ", r.stdout,
                     re.M), r.stdout
    a.stop()
    a.home.store_file.write_bytes(b"garbage" * 1000)
    for suffix in ("-wal", "-shm"):
        a.home.store_file.with_name(a.home.store_file.name + suffix).unlink(missing_ok=True)
    r = a.cli.run("doctor", env=env)
    assert re.search(r"^FAIL  store: .* is damaged: .*; fix: restore a backup", r.stdout, re.M)
    assert "Traceback" not in r.stderr
