"""Attachment commands: attach, attachments, detach, and what `get --attachment` does."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, BinaryIO, TextIO, cast

from wifisync.cli.commands_items import attachment_json, size_text
from wifisync.cli.common import PasswordSource, after_write, loaded, unlocked
from wifisync.cli.listing import iso_time
from wifisync.client.control import notify_daemon
from wifisync.errors import UsageError
from wifisync.vault import attachments as att
from wifisync.vault.unlocked import Vault


def register(sub: Any) -> None:
    """Add this module's subcommands."""
    p = sub.add_parser("attach", help="attach a file to an item")
    p.add_argument("item", metavar="ITEM", help="full ID, unique ID prefix, or exact title")
    p.add_argument("file", metavar="FILE", help="the file to attach; - reads standard input")
    p.add_argument("--name", help="the attachment's name (default: the file's base name; "
                   "required with -)")
    p.set_defaults(func=cmd_attach)

    p = sub.add_parser("attachments", help="list an item's attachments")
    p.add_argument("item", metavar="ITEM", help="full ID, unique ID prefix, or exact title")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=cmd_attachments)

    # `get ITEM --attachment NAME [-o FILE] [--force]` is an option of `get`
    # (cli/fast.py defines its grammar, cli/commands_everyday.py dispatches here).

    p = sub.add_parser("detach", help="remove an attachment from an item")
    p.add_argument("item", metavar="ITEM", help="full ID, unique ID prefix, or exact title")
    p.add_argument("name", metavar="NAME", help="the attachment's name")
    p.set_defaults(func=cmd_detach)


class _BinaryLines:
    """The password line read from binary stdin byte by byte, so the file after it is intact."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def isatty(self) -> bool:
        return self.stream.isatty()

    def readline(self) -> str:
        line = bytearray()
        while (b := self.stream.read(1)) and b != b"\n":
            line += b
        return line.decode("utf-8", "replace") + ("\n" if b else "")


def cmd_attach(args: argparse.Namespace) -> int:
    """Attach a file (or standard input) to an item, chunk by chunk."""
    if args.file == "-":
        if not args.name:
            raise UsageError("attach -: give the attachment's --name")
        name = att.check_name(args.name)
        stdin = sys.stdin.buffer
        source = att.Source.of_stream(stdin)
        password_stdin: TextIO = cast(TextIO, _BinaryLines(stdin))
    else:
        path = Path(args.file)
        if path.is_dir():
            raise UsageError(f"{path} is a folder, not a file")
        name = att.check_name(args.name or path.name)
        source = att.Source.of_path(path)
        password_stdin = sys.stdin
    try:
        with loaded(args) as ctx:
            vault = Vault.unlock(ctx.store, ctx.identity,
                                 PasswordSource(args, password_stdin).current())
            item = vault.resolve(args.item)
            att.attach(vault, item, name, source, ctx.config.vault.attachment_max_bytes,
                       progress=lambda: notify_daemon(ctx.home, wait=False))
            vault.merge_pending()
    finally:
        source.close()
    after_write(ctx.home)
    return 0


def cmd_attachments(args: argparse.Namespace) -> int:
    """List an item's attachments: name, size and when it was attached."""
    with unlocked(args) as (_ctx, vault):
        found = att.attachments(vault, vault.resolve(args.item))
    if args.json:
        sys.stdout.write(json.dumps([attachment_json(a) for a in found], indent=2,
                                    ensure_ascii=False) + "\n")
        return 0
    for a in found:
        added = iso_time(a.added)[:16].replace("T", " ")
        print(f"{size_text(a.ref.size):>10}  {added}  {a.name}")
    if not found:
        sys.stderr.write("no attachments; add one with `wifisync attach ITEM FILE`\n")
    return 0


def cmd_get_attachment(args: argparse.Namespace) -> int:
    """Write one attachment, whole and checked, to standard output or ``-o FILE``."""
    output = Path(args.output) if args.output else None
    if output is not None and not args.force and (output.exists() or output.is_symlink()):
        raise UsageError(f"{output} exists; give --force to overwrite it")
    with unlocked(args) as (_ctx, vault):
        found = att.find(vault, vault.resolve(args.item), args.attachment)
        if output is None:
            att.write_to(vault, found, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            att.save_as(vault, found, output, overwrite=args.force)
    return 0


def cmd_detach(args: argparse.Namespace) -> int:
    """Remove an attachment from an item."""
    with unlocked(args) as (ctx, vault):
        att.detach(vault, vault.resolve(args.item), args.name)
        vault.merge_pending()
    after_write(ctx.home)
    return 0
