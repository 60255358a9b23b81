"""Entry point: parse the command line, run one command, turn errors into one line and a code."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sqlite3
import sys
from collections.abc import Sequence
from types import ModuleType

from wifisync import __version__
from wifisync.cli import fast
from wifisync.errors import WifisyncError
from wifisync.limits import disable_core_dumps
from wifisync.termtext import shown

MODULES = ("commands_items", "commands_everyday", "commands_attachments", "commands_transfer",
           "commands_daemon", "commands_pairing", "commands_service", "commands_deletes")
OWNER = {  # subcommand -> the module that registers it (tests/cli/test_basics.py pins it)
    **dict.fromkeys(("add", "edit", "history", "id", "init", "list", "passwd", "rm", "show",
                     "verify"), "commands_items"),
    **dict.fromkeys(("code", "generate", "get", "lock", "trash", "undelete", "unlock"),
                    "commands_everyday"),
    **dict.fromkeys(("attach", "attachments", "detach"), "commands_attachments"),
    **dict.fromkeys(("backup", "export", "import", "restore"), "commands_transfer"),
    **dict.fromkeys(("daemon", "devices", "grant", "revoke", "status"), "commands_daemon"),
    **dict.fromkeys(("join", "pair"), "commands_pairing"),
    **dict.fromkeys(("completion", "doctor", "service"), "commands_service"),
    "confirm-deletes": "commands_deletes",
}


def command_modules(command: str | None = None) -> list[ModuleType]:
    """Each module adds its subcommands; a subcommand sets ``func(args) -> int``.

    Imported on first use, so that ``get`` answered by the unlock agent (cli/fast.py)
    does not pay for them; given the ``command`` about to run, only the module that owns
    it (importers, TLS, pairing and the rest cost a short command a third of its time).
    """
    names = (OWNER[command],) if command in OWNER else MODULES
    return [importlib.import_module(f"wifisync.cli.{name}") for name in names]


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"wifisync: {message}\n")
        sys.exit(2)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full command-line grammar (with ``command``: only its module's subcommands)."""
    parser = _Parser(prog="wifisync", description="A password vault synced over your own network.")
    parser.add_argument("--home", help="keep this device's config, data and runtime files in DIR",
                        metavar="DIR")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the master password as one line from standard input")
    parser.add_argument("--version", action="version", version=f"wifisync {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in command_modules(command):
        module.register(sub)
    return parser


GC_GEN0_THRESHOLD = 100_000  # allocations between young collections (CPython's default: 700)


def tune_gc() -> None:
    """A short run that builds many acyclic objects (10k items: ~110 ms of collections with
    the defaults) collects seldom; what start-up imported is never scanned again."""
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 50, 100)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    os.umask(0o077)  # everything this program writes is private to its user
    tune_gc()
    disable_core_dumps()  # the vault key and the master password live in this memory
    own_process = argv is None  # the command line is this process's: it may start again
    argv = list(sys.argv[1:] if argv is None else argv)
    if own_process and fast.command_of(argv) == "daemon":  # before the daemon's imports
        from wifisync.daemon.process import trust_no_authority, use_system_allocator

        use_system_allocator()  # returns only once on the C allocator (or where it cannot be)
        trust_no_authority()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (`wifisync completion`)
        from wifisync.cli import commands_service

        commands_service.complete(build_parser())
    try:
        status = fast.run(argv)
        if status is None:
            args = build_parser(fast.command_of(argv)).parse_args(argv)
            status = int(args.func(args))
        sys.stdout.flush()
        return status
    except WifisyncError as exc:
        sys.stderr.write(f"wifisync: {shown(exc)}\n")  # may quote another device
        return exc.exit_code
    except BrokenPipeError:
        # The reader left early (`wifisync list | head`): say nothing, and keep the
        # interpreter's final flush from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        sys.stderr.write(f"wifisync: {exc.strerror or exc}{where}\n")
        return 1
    except sqlite3.Error as exc:
        sys.stderr.write(f"wifisync: the store failed: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("wifisync: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
