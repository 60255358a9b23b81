"""Service and shell commands: service install/uninstall, doctor, completion."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path
from typing import Any

from wifisync.cli.common import locate_home
from wifisync.termtext import shown

SHELLS = ("bash", "zsh", "fish")


def register(sub: Any) -> None:
    """Add this module's subcommands."""
    p = sub.add_parser("service", help="run the daemon as a systemd or launchd user service")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = actions.add_parser("install", help="write the service file with this wifisync's path "
                                           "and load it")
    q.add_argument("--now", action="store_true", help="also enable and start it now")
    q.set_defaults(func=cmd_service_install)
    q = actions.add_parser("uninstall", help="stop the service and remove its file")
    q.set_defaults(func=cmd_service_uninstall)

    p = sub.add_parser("doctor", help="check that this device can sync, one line per check "
                                      "with a fix")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("completion", help="shell completion script for bash, zsh or fish")
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    p.add_argument("--install", action="store_true",
                   help="write it where the shell looks for it, instead of printing it")
    p.set_defaults(func=cmd_completion)


def _custom_home(args: argparse.Namespace) -> Path | None:
    """The ``--home`` (or ``$WIFISYNC_HOME``) in use, for the service to use too."""
    chosen = getattr(args, "home", None) or os.environ.get("WIFISYNC_HOME")
    return Path(chosen).expanduser().absolute() if chosen else None


def cmd_service_install(args: argparse.Namespace) -> int:
    """Write the unit or agent, load it where a service manager is reachable, say what was done."""
    from wifisync.client.control import daemon_status
    from wifisync.errors import WifisyncError
    from wifisync.service import install, runs_as_service

    try:
        live = daemon_status(locate_home(args))
    except WifisyncError:
        live = None
    pid = int(live["pid"]) if live and isinstance(live.get("pid"), int) else None
    foreign = pid if pid is not None and not runs_as_service(pid) else None
    report = install(_custom_home(args), args.now, platform.system(), foreign_daemon=foreign)
    print("\n".join(report.lines()))
    return 0


def cmd_service_uninstall(args: argparse.Namespace) -> int:
    """Stop and remove the service."""
    from wifisync.service import uninstall

    report = uninstall(platform.system())
    print("\n".join(report.lines()))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """One line per check with its fix; exit 1 when any fails."""
    from wifisync.cli.doctor import run_checks

    checks = run_checks(locate_home(args), platform.system())
    for check in checks:
        print(shown(check.line()), flush=True)  # peers' names and errors come from afar
    failed = [c for c in checks if c.ok is False]
    print(f"{len(failed)} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0


def completion_script(shell: str) -> str:
    """The completion script for ``shell`` (argcomplete: bash, zsh and fish alike)."""
    from argcomplete.shell_integration import shellcode

    return str(shellcode(["wifisync"], shell=shell))


def completion_path(shell: str) -> Path:
    """Where each shell looks for a user's completion scripts."""
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return {"bash": data / "bash-completion" / "completions" / "wifisync",
            "zsh": data / "zsh" / "site-functions" / "_wifisync",
            "fish": config / "fish" / "completions" / "wifisync.fish"}[shell]


def cmd_completion(args: argparse.Namespace) -> int:
    """Print the script, or install it for this user."""
    script = completion_script(args.shell)
    if not args.install:
        sys.stdout.write(script)
        return 0
    path = completion_path(args.shell)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    os.chmod(path, 0o644)
    print(f"wrote {path}")
    if args.shell == "zsh":
        print(f"add to ~/.zshrc, before compinit: fpath=({path.parent} $fpath)")
    else:
        print("it takes effect in new shells")
    return 0


def complete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request (argcomplete exits when it handled one)."""
    import argcomplete

    argcomplete.autocomplete(parser)
