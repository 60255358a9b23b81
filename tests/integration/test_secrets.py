"""What a running pair of daemons leaves behind: no secret in a log (at debug level), in a
process's command line, or in any file of either home, SQLite's WAL included."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, Cli
from tests.integration.conftest import Device, wait_for

TITLE = "Title-Platypus-5521"
USER = "User-Wallaby-8812"
SECRET = "Secret-Cassowary-3390"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Device, Device]]:
    """Two devices logging at debug level; their daemons are killed at the end."""
    made = [Device(Cli(tmp_path / name), name) for name in ("desktop", "laptop")]
    for d in made:
        d.configure(log_level="debug")
    yield made[0], made[1]
    for d in made:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(5)


def cmdline(pid: int) -> bytes:
    """A process's argv as the kernel shows it to every user of the machine."""
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def test_no_secret_in_logs_command_lines_or_files(pair: tuple[Device, Device]) -> None:
    desktop, laptop = pair
    desktop.cli.ok("init", "--name", "desktop")
    desktop.start()
    pairing = subprocess.Popen(desktop.cli.argv("pair", "--timeout", "60"),
                               env=desktop.cli.env(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert pairing.stdout is not None
    code = pairing.stdout.readline().removeprefix("Pairing code: ").strip()
    laptop.cli.ok("join", code, "--address", desktop.address, "--name", "laptop",
                  env={"WIFISYNC_PASSWORD": None})
    assert pairing.wait(30) == 0
    laptop.start()
    wait_for(lambda: laptop.connected_to(desktop), 10, "the session")
    item = desktop.cli.ok("add", TITLE, "--field", "user=" + USER, "--secret", "password",
                          input=SECRET + "\n").strip()
    wait_for(lambda: laptop.holds(item), 5, "the item on the laptop")
    assert SECRET in laptop.cli.ok("show", item, "--reveal")  # it did travel, encrypted

    secrets = [PASSWORD, SECRET, USER, TITLE, code, code.split("-", 1)[1]]
    for device in (desktop, laptop):
        assert device.proc is not None
        argv = cmdline(device.proc.pid)
        log = device.log()
        assert "in sync with" in log  # the log covers the session that carried the item
        for secret in secrets:
            assert secret not in log, f"{secret!r} in {device.name}'s log"
            assert secret.encode() not in argv, f"{secret!r} in {device.name}'s argv"
        for path in sorted(device.cli.home.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                for secret in secrets:
                    assert secret.encode() not in data, f"{secret!r} in {path}"
