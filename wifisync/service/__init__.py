"""Running the daemon as a service: the systemd user unit and the launchd agent, installed.

Both files ship in the package as templates (``templates/``; ``systemd/`` in the
repository is the readable copy). Installing renders them with the absolute path of
the running wifisync and the home in use, writes them where the service manager looks,
and asks the manager to load them when it is reachable; otherwise it says the commands.
"""

from __future__ import annotations

import os
import plistlib
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from wifisync.errors import WifisyncError
from wifisync.home import Home

UNIT_NAME = "wifisync.service"
AGENT_LABEL = "com.wifisync.daemon"
PLIST_NAME = f"{AGENT_LABEL}.plist"
MANAGER_TIMEOUT = 30.0
XDG_PINNED = ("XDG_CONFIG_HOME", "XDG_DATA_HOME")  # where platformdirs puts config and data


def template(name: str) -> str:
    """A shipped template's text."""
    return resources.files(__package__).joinpath("templates", name).read_text("utf-8")


def wifisync_command() -> list[str]:
    """How to start this same wifisync again: its script's absolute path, else ``python -m``."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "wifisync" and script.is_file():
        return [str(script.resolve())]
    return [str(Path(sys.executable).absolute()), "-m", "wifisync"]


def daemon_command(home_dir: Path | None) -> list[str]:
    """The daemon's argv in a service; ``--home`` only when a non-default home is in use."""
    return [*wifisync_command(), *(["--home", str(home_dir)] if home_dir else []), "daemon"]


def _systemd_word(word: str) -> str:
    """One argv word as systemd reads it: specifiers and variables escaped, quoted if needed."""
    escaped = word.replace("%", "%%").replace("$", "$$")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./$-]+", escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(argv: list[str], home_dir: Path | None) -> str:
    """The systemd user unit for ``argv``; a custom home gets its own writable paths."""
    text = template(UNIT_NAME)
    exec_start = "ExecStart=" + " ".join(_systemd_word(w) for w in argv)
    text = re.sub(r"^ExecStart=.*$", lambda _m: exec_start, text, count=1, flags=re.M)
    pinned = [f"{k}={v}" for k in XDG_PINNED if os.path.isabs(v := os.environ.get(k, ""))]
    writable: list[Path] = []
    if home_dir is not None:
        home = Home.locate(str(home_dir))
        writable = [home.data_dir, home.runtime_dir]
    elif "XDG_DATA_HOME" in " ".join(pinned):
        writable = [Home.locate().data_dir]
    if writable:
        paths = " ".join("-" + _systemd_word(str(p)) for p in writable)
        text = re.sub(r"^ReadWritePaths=.*$", lambda _m: f"ReadWritePaths={paths}", text,
                      count=1, flags=re.M)
    if pinned and home_dir is None:  # the service must find the same home as this shell
        lines = "".join(f"Environment={_systemd_word(p)}\n" for p in pinned)
        text = re.sub(r"^(ExecStart=.*\n)", lambda m: m.group(1) + lines, text, count=1,
                      flags=re.M)
    return text


def render_plist(argv: list[str], log_file: Path) -> bytes:
    """The launchd agent for ``argv``, logging to ``log_file``."""
    agent = plistlib.loads(template(PLIST_NAME).encode())
    agent["ProgramArguments"] = argv
    agent["StandardErrorPath"] = str(log_file)
    return plistlib.dumps(agent)


@dataclass
class Report:
    """What an install or uninstall did and what is left to the user, line by line."""

    done: list[str] = field(default_factory=list)
    problem: str = ""
    todo: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report as printed."""
        out = list(self.done)
        if self.problem:
            out.append(f"could not reach the service manager ({self.problem})")
        if self.todo:
            out.append("run these yourself:")
            out.extend(f"  {cmd}" for cmd in self.todo)
        return out + self.notes


Runner = Callable[[list[str]], tuple[bool, str]]


def run_command(argv: list[str]) -> tuple[bool, str]:
    """Run a service manager command; (succeeded, its last line of output)."""
    if shutil.which(argv[0]) is None:
        return False, f"{argv[0]} not found"
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=MANAGER_TIMEOUT,
                           check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    said = (r.stderr.strip() or r.stdout.strip()).splitlines()
    return r.returncode == 0, said[-1] if said else f"exit status {r.returncode}"


def _config_home() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config"


def unit_path() -> Path:
    """Where the systemd user unit goes."""
    return _config_home() / "systemd" / "user" / UNIT_NAME


def unit_enabled() -> bool:
    """Whether ``systemctl --user enable`` linked the unit into the default target."""
    return (unit_path().parent / "default.target.wants" / UNIT_NAME).exists()


def plist_path() -> Path:
    """Where the launchd agent goes."""
    return Path.home() / "Library" / "LaunchAgents" / PLIST_NAME


def installed_path(system: str) -> Path:
    """The service file for this operating system."""
    return plist_path() if system == "Darwin" else unit_path()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _linger_note() -> str:
    user = pwd.getpwuid(os.getuid()).pw_name
    if Path("/var/lib/systemd/linger", user).exists():
        return f"lingering is enabled for {user}: the service runs without a login session"
    return (f"on a machine nobody logs into (a NAS), keep it running without a login "
            f"session: loginctl enable-linger {user}")


def _manager(report: Report, run: Runner, commands: list[list[str]]) -> None:
    """Run ``commands`` in order; from the first failure on, hand them to the user."""
    for i, cmd in enumerate(commands):
        ok, said = run(cmd)
        if not ok:
            report.problem = f"{cmd[0]}: {said}"
            report.todo.extend(" ".join(c) for c in commands[i:])
            return
        report.done.append(f"ran {' '.join(cmd)}")


def install(home_dir: Path | None, now: bool, system: str, run: Runner = run_command,
            foreign_daemon: int | None = None) -> Report:
    """Write the service file for this system and load it (``now``: start it too).

    ``foreign_daemon`` is the pid of a daemon already serving this home outside the
    service: the service is then not started (it would fail on the daemon lock).
    """
    report = Report()
    if foreign_daemon is not None and now:
        now = False
        report.notes.append(f"not started: a daemon already runs for this home outside the "
                            f"service (pid {foreign_daemon}); stop it (kill {foreign_daemon}), "
                            "then start the service")
    argv = daemon_command(home_dir)
    if home_dir is not None:
        Home.locate(str(home_dir)).ensure()  # the unit makes these writable: they must exist
    if system == "Darwin":
        logs = Path.home() / "Library" / "Logs" / "wifisync"
        logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = plist_path()
        _write(path, render_plist(argv, logs / "daemon.log"))
        report.done.append(f"wrote {path} (runs {' '.join(argv)})")
        domain = f"gui/{os.getuid()}"
        if now:
            run(["launchctl", "bootout", f"{domain}/{AGENT_LABEL}"])  # an older copy, if loaded
            _manager(report, run, [["launchctl", "bootstrap", domain, str(path)]])
        else:
            report.notes.append(f"it starts at your next login; now: launchctl bootstrap "
                                f"{domain} {path}")
        report.notes.append(f"logs: {logs / 'daemon.log'}")
        return report
    if system != "Linux":
        raise WifisyncError(f"no service manager support on {system}; run `wifisync daemon` "
                            "from your system's own service manager")
    path = unit_path()
    _write(path, render_unit(argv, home_dir).encode())
    report.done.append(f"wrote {path} (runs {' '.join(argv)})")
    commands = [["systemctl", "--user", "daemon-reload"]]
    if now:  # restart, not start: a reinstall must replace a running daemon
        commands.append(["systemctl", "--user", "enable", UNIT_NAME])
        commands.append(["systemctl", "--user", "restart", UNIT_NAME])
    _manager(report, run, commands)
    if not now:
        report.notes.append(f"start it now and at every login: systemctl --user enable --now "
                            f"{UNIT_NAME}")
    report.notes.append("logs: journalctl --user -u wifisync")
    report.notes.append(_linger_note())
    return report


def uninstall(system: str, run: Runner = run_command) -> Report:
    """Stop the service, unload it and remove its file."""
    report = Report()
    path = installed_path(system)
    if not path.exists():
        report.done.append(f"not installed (no {path})")
        return report
    if system == "Darwin":
        run(["launchctl", "bootout", f"gui/{os.getuid()}/{AGENT_LABEL}"])
        path.unlink()
        report.done.append(f"removed {path}")
        return report
    disable = ["systemctl", "--user", "disable", "--now", UNIT_NAME]
    reachable, said = run(disable)
    if reachable:
        report.done.append(f"ran {' '.join(disable)}")
    else:
        report.problem = f"systemctl: {said}"
        report.todo.append(f"systemctl --user stop {UNIT_NAME}")
        wants = path.parent / "default.target.wants" / UNIT_NAME
        if wants.is_symlink():
            wants.unlink()
            report.done.append(f"removed {wants}")
    path.unlink()
    report.done.append(f"removed {path}")
    if reachable:
        _manager(report, run, [["systemctl", "--user", "daemon-reload"]])
    else:
        report.todo.append("systemctl --user daemon-reload")
    return report


def runs_as_service(pid: int) -> bool:
    """Whether process ``pid`` runs inside the wifisync service (its cgroup or launchd job)."""
    cgroup = Path(f"/proc/{pid}/cgroup")
    if cgroup.exists():
        try:
            return UNIT_NAME in cgroup.read_text()
        except OSError:
            return False
    ok, said = run_command(["launchctl", "print", f"gui/{os.getuid()}/{AGENT_LABEL}"])
    return ok and f"pid = {pid}" in said
