"""Everyday commands: unlock, lock, get, generate, code, trash, undelete."""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import time
from typing import Any

from wifisync.cli.common import PasswordSource, after_write, loaded, unlocked
from wifisync.cli.fast import add_get_arguments, emit_value
from wifisync.cli.listing import iso_time, print_json
from wifisync.errors import ItemNotFoundError, UsageError
from wifisync.termtext import shown
from wifisync.vault.lookup import field_value, plural
from wifisync.vault.unlocked import Vault

DEFAULT_TIMEOUT = "15m"
_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> int:
    """argparse type of ``--timeout``: 90s, 15m, 2h, 1d, plain seconds, or 0 for none."""
    m = _DURATION.fullmatch(text.strip().lower())
    if m is None:
        raise argparse.ArgumentTypeError(
            f"expected a duration like 90s, 15m, 2h or 0 (until `wifisync lock`), got {text!r}")
    seconds = int(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds > 366 * 86400:
        raise argparse.ArgumentTypeError("at most a year (0 means until `wifisync lock`)")
    return seconds


def add_generator_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """``--length``, ``--words`` and ``--no-symbols`` for ``generate`` and ``--generate``."""
    p.add_argument("--length", type=int, default=None, metavar="N",
                   help=f"characters of {what} (default 20)")
    p.add_argument("--words", type=int, default=None, metavar="N",
                   help=f"make {what} a passphrase of N words from the EFF large wordlist")
    p.add_argument("--no-symbols", action="store_true",
                   help="letters and digits only")


def new_password(args: argparse.Namespace) -> str:
    """A password or passphrase as the generator options ask."""
    from wifisync.vault.passwords import DEFAULT_LENGTH, generate, passphrase

    if args.words is not None:
        if args.length is not None:
            raise UsageError("give --length or --words, not both")
        return passphrase(args.words)
    return generate(args.length or DEFAULT_LENGTH, symbols=not args.no_symbols)


def register(sub: Any) -> None:
    """Add this module's subcommands."""
    p = sub.add_parser("unlock", help="unlock the vault for a while: commands then need no "
                       "password")
    p.add_argument("--timeout", type=duration, default=duration(DEFAULT_TIMEOUT),
                   metavar="DURATION", help=f"lock again after this long (default "
                   f"{DEFAULT_TIMEOUT}; 90s, 2h, ...; 0 = until `wifisync lock` or logout)")
    p.set_defaults(func=cmd_unlock)

    p = sub.add_parser("lock", help="forget the vault key now")
    p.set_defaults(func=cmd_lock)

    p = sub.add_parser("get", help="print one field of an item (default: password), nothing "
                       "else")
    add_get_arguments(p)
    p.set_defaults(func=cmd_get)

    p = sub.add_parser("generate", help="print a new random password")
    add_generator_arguments(p, "the password")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("code", help="print the item's current TOTP code")
    p.add_argument("item", metavar="ITEM", help="ID, unique ID prefix, or title (any case)")
    p.set_defaults(func=cmd_code)

    p = sub.add_parser("trash", help="list deleted items")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=cmd_trash)

    p = sub.add_parser("undelete", help="bring a deleted item back with all its fields")
    p.add_argument("item", metavar="ITEM", help="ID, ID prefix, or title of a deleted item")
    p.set_defaults(func=cmd_undelete)


# --- unlock and lock -------------------------------------------------------------------------


def _until(until: float | None) -> str:
    if until is None:
        return "until `wifisync lock` or logout"
    when = datetime.datetime.fromtimestamp(until).astimezone()
    return f"until {when.strftime('%H:%M:%S')}"


def cmd_unlock(args: argparse.Namespace) -> int:
    """Check the master password, then hand the vault key to a fresh agent."""
    from wifisync.client.agent import start_agent, stop_agent

    with loaded(args) as ctx:
        vault = Vault.unlock(ctx.store, ctx.identity, PasswordSource(args).current())
        key = vault.vault_key
    home = ctx.home
    stop_agent(home.runtime_dir)  # a second unlock replaces the first (new timeout)
    start_agent(home.config_dir, home.data_dir, home.runtime_dir, key, args.timeout)
    until = time.time() + args.timeout if args.timeout else None
    sys.stderr.write(f"unlocked {_until(until)}\n")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    """Tell the agent to forget the key and exit."""
    from wifisync.cli.common import locate_home
    from wifisync.client.agent import stop_agent

    if stop_agent(locate_home(args).runtime_dir):
        sys.stderr.write("locked\n")
    else:
        sys.stderr.write("the vault was not unlocked\n")
    return 0


def unlock_state(runtime_dir: Any) -> dict[str, Any]:
    """``{"unlocked": bool, "unlocked_until": ISO-8601 or None}`` for ``status``."""
    from wifisync.client.agent import agent_status

    live = agent_status(runtime_dir)
    until = None
    if live is not None and live.get("until") is not None:
        until = datetime.datetime.fromtimestamp(float(live["until"]), tz=datetime.UTC
                                                ).isoformat(timespec="seconds").replace(
                                                    "+00:00", "Z")
    return {"unlocked": live is not None, "unlocked_until": until}


# --- get, generate, code ---------------------------------------------------------------------


def cmd_get(args: argparse.Namespace) -> int:
    """One field's value alone (the vault locked, or the agent could not answer)."""
    if args.attachment is not None:
        from wifisync.cli.commands_attachments import cmd_get_attachment

        if args.clip:
            raise UsageError("--clip copies a field; an attachment goes to stdout or -o FILE")
        return cmd_get_attachment(args)
    if args.output is not None or args.force:
        raise UsageError("-o and --force go with --attachment NAME")
    with unlocked(args) as (_ctx, vault):
        view = vault.get(vault.resolve(args.item))
    value = field_value(view.state.title, view.state.values, args.field)
    return emit_value(value, args.clip, args.clear)


def cmd_generate(args: argparse.Namespace) -> int:
    """A new password on stdout."""
    print(new_password(args))
    return 0


def cmd_code(args: argparse.Namespace) -> int:
    """The current TOTP code on stdout, how long it stays valid on stderr."""
    from wifisync.vault.totp import parse

    with unlocked(args) as (_ctx, vault):
        view = vault.get(vault.resolve(args.item))
    values = view.state.values
    if not any(k.casefold() == "totp" for k in values):
        raise ItemNotFoundError(f"{view.state.title!r} has no TOTP secret (a `totp` field "
                                "holding an otpauth:// URI or a base32 secret)")
    generator = parse(field_value(view.state.title, values, "totp"))
    now = time.time()
    print(generator.code(now))
    sys.stderr.write(f"valid for {plural(generator.remaining(now), 'more second')}\n")
    return 0


# --- trash and undelete ----------------------------------------------------------------------


def resolve_deleted(vault: Vault, ref: str) -> bytes:
    """A deleted item by ID, ID prefix or title (see :func:`wifisync.vault.lookup.resolve`)."""
    from wifisync.vault.lookup import resolve

    return resolve(ref, ((r.header.item, s.title) for r, s in vault.trash()))


def resolve_any(vault: Vault, ref: str) -> bytes:
    """A live item, else a deleted one (``history`` reads both)."""
    try:
        return vault.resolve(ref)
    except ItemNotFoundError as live_miss:
        try:
            return resolve_deleted(vault, ref)
        except ItemNotFoundError:
            raise live_miss from None


def cmd_trash(args: argparse.Namespace) -> int:
    """Deleted items, latest first: title, when, by which device."""
    from wifisync.model.deviceid import format_device_id, short_device_id
    from wifisync.model.membership import named_devices

    with unlocked(args) as (ctx, vault):
        entries = vault.trash()
        names = {d: m.name for d, m in named_devices(ctx.store).items()}
    rows = [{"id": r.header.item.hex(), "title": s.title, "type": s.type,
             "deleted": iso_time(r.header.time), "by": format_device_id(r.header.author),
             "by_name": names.get(r.header.author, "")} for r, s in entries]
    if args.json:
        print_json(rows)
        return 0
    for (record, _s), row in zip(entries, rows, strict=True):
        who = short_device_id(record.header.author)
        if row["by_name"]:
            who += f" ({shown(row['by_name'])})"  # a member's own choice of name
        print(f"{row['id'][:12]}  {row['deleted'][:16].replace('T', ' ')}  {row['title']}  "
              f"deleted by {who}")
    if not rows:
        sys.stderr.write("the trash is empty\n")
    return 0


def cmd_undelete(args: argparse.Namespace) -> int:
    """Bring a deleted item back as it last was."""
    with unlocked(args) as (ctx, vault):
        item = resolve_deleted(vault, args.item)
        state = vault.undelete(item)
        vault.merge_pending()
    after_write(ctx.home)
    print(f"restored {item.hex()}  {state.title}")
    return 0
