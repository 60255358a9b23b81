"""The installed unit's daemon, run in the sandbox the unit asks systemd for, talks to systemd.

The unit comes from `wifisync service install`; its ExecStart runs in a rebuilt sandbox
(read-only file system but its ReadWritePaths, a private /tmp) with a notify socket and
a watchdog, as systemd would start it. It must say READY=1 and STATUS=, ping the
watchdog, serve `status`, reload on SIGHUP and say STOPPING=1 on SIGTERM.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Cli
from tests.integration.conftest import Device, wait_for

SANDBOX = Path(__file__).with_name("sandbox.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # the one Debian's python3-seccomp is built for


def sandbox_unavailable_reason() -> str | None:
    """Why a private mount namespace with read-only remounts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (mount namespaces and bind mounts)"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare or mount (util-linux) is missing"
    if not Path("/mnt").is_dir():
        return "no /mnt to use as the sandbox's scratch mount point"
    if shutil.which("systemd-analyze") is None or subprocess.run(
            [SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True, check=False
    ).returncode != 0:
        return "systemd-analyze or python3-seccomp is missing (make lab-tools installs them)"
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        "mount -o remount,bind,ro / && mount -t tmpfs t /mnt"],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return f"unshare -m with read-only remounts not permitted: {r.stderr.strip()}"
    return None


def unit_settings(text: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit, every value of a repeated key."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


class NotifySocket:
    """The datagram socket systemd listens on, in the abstract namespace (seen by any mount ns)."""

    def __init__(self) -> None:
        self.name = f"@wifisync-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def poll(self) -> list[str]:
        """Every message received so far."""
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                return self.messages

    def said(self, needle: str) -> bool:
        """Whether some message had a line starting with ``needle``."""
        return any(line.startswith(needle) for m in self.poll() for line in m.splitlines())


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    """A fresh notify socket."""
    n = NotifySocket()
    yield n
    n.sock.close()


def test_the_installed_unit_runs_in_its_sandbox_and_talks_to_systemd(
        devices: Callable[..., list[Device]], tmp_path: Path, notify: NotifySocket) -> None:
    reason = sandbox_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    (a,) = devices(1)
    xdg = tmp_path / "xdg"
    no_manager = tmp_path / "empty-path"  # no systemctl: install only writes and says so
    no_manager.mkdir()
    out = a.cli.ok("service", "install", env={"XDG_CONFIG_HOME": str(xdg),
                                              "PATH": str(no_manager)})
    assert "systemctl --user daemon-reload" in out
    unit = unit_settings((xdg / "systemd/user/wifisync.service").read_text())
    assert unit["ProtectSystem"] == ["strict"] and unit["ProtectHome"] == ["read-only"]
    assert unit["PrivateTmp"] == ["yes"] and unit["Type"] == ["notify"]
    writable = [Path(p.lstrip("-")) for p in unit["ReadWritePaths"][0].split()]
    assert a.home.config_dir not in writable  # the config is only read
    argv = shlex.split(unit["ExecStart"][0])
    assert Path(argv[0]).is_absolute() and argv[-1] == "daemon"
    a.home.config_dir.chmod(0o755)  # a mode the daemon may not "fix" on a read-only mount

    env = a.cli.env({"NOTIFY_SOCKET": notify.name, "WATCHDOG_USEC": "1000000",
                     "WATCHDOG_PID": None})
    seccomp = [f"--syscalls={spec}" for spec in unit["SystemCallFilter"]]
    seccomp += [f"--syscall-errno={e}" for e in unit.get("SystemCallErrorNumber", [])]
    cmd = ["unshare", "-m", "--propagation", "private", SYSTEM_PYTHON, str(SANDBOX),
           "--keep", str(a.cli.home), "--keep", str(REPO),  # a checkout under /tmp too
           *(f"--rw={p}" for p in writable), *seccomp, "--", *argv]
    with a.log_file.open("ab") as log:
        a.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    wait_for(lambda: a.proc is not None and (a.proc.poll() is not None or notify.said("READY=1")),
             15, "READY=1")
    assert a.proc.poll() is None, f"the daemon exited in its sandbox:\n{a.log()}"
    assert notify.said("STATUS=listening on port")
    mounts = Path(f"/proc/{a.proc.pid}/mountinfo").read_text().splitlines()
    root = next(m for m in mounts if m.split()[4] == "/")
    assert " ro," in f" {root.split()[5]},", "the sandbox's / is not read-only"

    status = a.cli.ok("status")
    assert f"running (pid {a.proc.pid})" in status
    wait_for(lambda: notify.said("WATCHDOG=1"), 5, "a watchdog ping")

    a.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded" in a.log(), 5, "the reload line")
    assert a.proc.poll() is None

    assert a.stop(signal.SIGTERM) == 0
    assert notify.said("STOPPING=1")
    assert not a.home.control_socket.exists() and not a.home.daemon_lock.exists()


def test_systemd_accepts_the_installed_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (make lab-tools installs it as root)")
    cli = Cli(tmp_path / "home")
    xdg, runtime = tmp_path / "xdg", tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    cli.ok("service", "install", env={"XDG_CONFIG_HOME": str(xdg), "PATH": str(tmp_path)})
    unit = xdg / "systemd/user/wifisync.service"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    r = subprocess.run([analyze, "--user", "verify", "--man=no", str(unit)], env=env,
                       capture_output=True, text=True, check=False, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    r = subprocess.run([analyze, "--user", "security", "--offline=yes", str(unit)], env=env,
                       capture_output=True, text=True, check=False, timeout=60)
    score = r.stdout.rsplit("Overall exposure level for wifisync.service:", 1)[-1].split()
    assert r.returncode == 0 and float(score[0]) <= 2.0, r.stdout[-400:]
