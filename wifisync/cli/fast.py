"""``get`` and ``list`` answered by the unlock agent without loading the rest of wifisync.

Importing every command module (crypto, TLS, SQLite, importers) costs more than the
150 ms a ``wifisync get`` may take; while the vault is unlocked the agent holds the
answer, so these two commands parse their own arguments here and ask it. Whenever this
path cannot answer (vault locked, an option it does not know, an empty list), it
returns None and the full command line takes over, with the same grammar: the
arguments of ``get`` and ``list`` are defined here, once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

FAST_COMMANDS = frozenset({"get", "list"})
DEFAULT_CLEAR_S = 45


def add_get_arguments(p: argparse.ArgumentParser) -> None:
    """``get ITEM [--field NAME] [--clip [--clear SECONDS]] | [--attachment NAME [-o FILE]]``."""
    p.add_argument("item", metavar="ITEM", help="ID, unique ID prefix, or title (any case)")
    p.add_argument("--field", default="password", metavar="NAME",
                   help="the field to print (default: password)")
    p.add_argument("--clip", action="store_true",
                   help="copy the value to the clipboard instead of printing it")
    p.add_argument("--clear", type=_seconds, default=DEFAULT_CLEAR_S, metavar="SECONDS",
                   help=f"with --clip: empty the clipboard after SECONDS if it still holds "
                   f"the value (default {DEFAULT_CLEAR_S}; 0 = never)")
    # ``get ITEM --attachment NAME [-o FILE [--force]]`` (cli/commands_attachments.py)
    p.add_argument("--attachment", metavar="NAME",
                   help="write this attachment (bytes, checked whole) instead of a field")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="with --attachment: write to FILE instead of standard output")
    p.add_argument("--force", action="store_true",
                   help="with -o: overwrite FILE if it exists")


def add_list_arguments(p: argparse.ArgumentParser) -> None:
    """``list [QUERY] [--tag TAG] [--type TYPE] [--json]``."""
    from wifisync.model.items import ITEM_TYPES

    p.add_argument("query", nargs="?", metavar="QUERY",
                   help="only items whose title, a tag, username or URL contains QUERY "
                   "(any case)")
    p.add_argument("--tag", metavar="TAG", help="only items with this tag (any case)")
    p.add_argument("--type", choices=ITEM_TYPES, help="only items of this type")
    p.add_argument("--json", action="store_true", help="print a JSON array")


def _seconds(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole seconds, got {text!r}") from None
    if not 0 <= n <= 24 * 3600:
        raise argparse.ArgumentTypeError("expected 0 to 86400 seconds")
    return n


class _Quiet(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)


GET_OPTIONS = frozenset({"home", "password_stdin", "command", "item", "field", "clip", "clear"})


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand: the first word after the global options."""
    words = iter(argv)
    for word in words:
        if word == "--home":
            next(words, None)
        elif not (word.startswith("--home=") or word == "--password-stdin"):
            return word
    return None


def _parse(argv: Sequence[str], command: str) -> argparse.Namespace | None:
    parser = _Quiet(add_help=False)
    parser.add_argument("--home")
    parser.add_argument("--password-stdin", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Quiet)
    # Only the command at hand: `list` needs the item types, `get` nothing more.
    (add_get_arguments if command == "get" else add_list_arguments)(
        sub.add_parser(command, add_help=False))
    try:
        args, rest = parser.parse_known_args(list(argv))
    except (ValueError, SystemExit):
        return None
    if rest or (command == "get" and any(
            v not in (None, False) for k, v in vars(args).items() if k not in GET_OPTIONS)):
        return None  # an option this path does not handle (a later `get --attachment`)
    return args


def runtime_dir(home: str | None) -> str:
    """The home's runtime directory, as :meth:`wifisync.home.Home.locate` finds it.

    Spelled out here because importing ``wifisync.home`` (dataclasses, pathlib) costs a
    sizeable share of a 150 ms budget; ``tests/cli/test_fast.py`` pins the two together.
    """
    chosen = home or os.environ.get("WIFISYNC_HOME")
    if chosen:
        return os.path.join(os.path.abspath(os.path.expanduser(chosen)), "run")
    import platformdirs

    return str(platformdirs.user_runtime_dir("wifisync"))


def run(argv: Sequence[str]) -> int | None:
    """The exit status if the agent answered, else None (the full CLI runs the command)."""
    command = command_of(argv)
    if command not in FAST_COMMANDS or "-h" in argv or "--help" in argv:
        return None
    args = _parse(argv, command)
    if args is None:
        return None
    from wifisync.agent.protocol import AgentUnavailable, call

    request = ({"op": "get", "item": args.item, "field": args.field} if command == "get"
               else {"op": "list", "query": args.query, "tag": args.tag, "type": args.type})
    try:
        reply = call(runtime_dir(args.home), request)
    except AgentUnavailable:
        return None
    if not reply.get("ok"):
        if reply.get("code") is None:
            return None
        from wifisync.termtext import shown

        sys.stderr.write(f"wifisync: {shown(reply.get('error'))}\n")  # as main() writes it
        return int(reply["code"])
    if command == "get":
        return emit_value(str(reply["value"]), args.clip, args.clear)
    return _print_listed(reply["items"], args.json)


def emit_value(value: str, clip: bool, clear_after: int) -> int:
    """Print a value alone, or put it on the clipboard (``get``)."""
    if not clip:
        sys.stdout.write(value + "\n")
        sys.stdout.flush()
        return 0
    from wifisync.cli.clipboard import copy
    from wifisync.errors import WifisyncError

    try:
        copy(value, clear_after)
    except (WifisyncError, OSError) as exc:
        sys.stderr.write(f"wifisync: {exc}\n")
        return 1
    if clear_after:
        sys.stderr.write(f"copied to the clipboard; cleared in {clear_after} s\n")
    else:
        sys.stderr.write("copied to the clipboard\n")
    return 0


def _print_listed(rows: list[list[object]], as_json: bool) -> int | None:
    from wifisync.cli.listing import print_list
    from wifisync.vault.lookup import Summary

    if not rows and not as_json:
        return None  # the full command explains an empty vault or an empty search
    print_list([Summary.from_row(r) for r in rows], as_json)
    return 0

