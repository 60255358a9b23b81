"""Import from other password managers, plaintext export, encrypted backup and restore."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from wifisync.cli.common import PasswordSource, after_write, locate_home, unlocked
from wifisync.errors import UsageError, WifisyncError
from wifisync.transfer import importers
from wifisync.transfer.backup import restore_backup, write_backup
from wifisync.transfer.export import EXPORT_FORMATS, export, export_files, files_folder
from wifisync.transfer.files import read_input, refuse_existing, write_private, write_private_with
from wifisync.transfer.importing import import_items
from wifisync.transfer.model import SourcePasswordError
from wifisync.vault.lookup import plural


def register(sub: Any) -> None:
    """Add import, export, backup and restore."""
    p = sub.add_parser("import", help="bring items in from another password manager's export")
    p.add_argument("file", type=Path, help="the exported file")
    p.add_argument("--format", choices=importers.FORMAT_NAMES,
                   help="the file's format (default: detected from its content)")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would be imported, write nothing")
    p.add_argument("--tag", action="append", default=[], metavar="TAG",
                   help="add TAG to every imported item (repeatable)")
    p.add_argument("--source-password-file", type=Path, metavar="FILE",
                   help="read the KeePass file's own password from the first line of FILE")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="write every item to a plaintext file (careful)")
    p.add_argument("file", type=Path, help="the file to write, or - for standard output")
    p.add_argument("--force", action="store_true", help="replace the file if it exists")
    p.add_argument("--format", choices=EXPORT_FORMATS, default=EXPORT_FORMATS[0],
                   help="wifisync-json (reads back losslessly, the default) or csv")
    p.add_argument("--plaintext", action="store_true",
                   help="confirm that the file will hold every password unencrypted")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("backup", help="write an encrypted backup of the vault and this device")
    p.add_argument("file", type=Path)
    p.add_argument("--force", action="store_true", help="replace the file if it exists")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="bring a vault back from a backup into an empty home")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_restore)


def _source_password(args: argparse.Namespace, needed: bool) -> str | None:
    """The source file's own password: from --source-password-file, else a terminal prompt."""
    if args.source_password_file is not None:
        text = read_input(args.source_password_file).decode("utf-8", errors="replace")
        return text.splitlines()[0] if text.splitlines() else ""
    if not needed:
        return None
    if sys.stdin.isatty():
        try:
            return getpass.getpass(f"Password of {args.file.name}: ")
        except EOFError:
            raise SourcePasswordError("no password entered for the source file") from None
    raise SourcePasswordError(
        f"{args.file.name} has its own password: pass --source-password-file FILE "
        "or run on a terminal")


def _progress(done: int, total: int) -> None:
    sys.stderr.write(f"\rimporting {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def cmd_import(args: argparse.Namespace) -> int:
    """Parse the file first (nothing is written if it is unreadable), then write the items."""
    data = read_input(args.file)
    module = importers.importer(args.format, data)
    source_password = _source_password(args, needed=module.FORMAT == "kdbx")
    parsed = importers.parse(data, module.FORMAT, source_password, path=args.file)
    with unlocked(args) as (ctx, vault):
        progress = _progress if sys.stderr.isatty() and len(parsed.items) > 200 else None
        summary = import_items(vault, parsed, module.FAMILY, args.tag, args.dry_run, progress,
                               ctx.config.vault.attachment_max_bytes)
        if not args.dry_run and (summary.total("imported") or summary.total("updated")
                                 or summary.attachments["imported"]):
            after_write(ctx.home)
    print("\n".join(summary.lines()))
    return 1 if parsed.problems and not parsed.items else 0


def cmd_export(args: argparse.Namespace) -> int:
    """A plaintext export, only when asked for explicitly, readable by this user only."""
    if not args.plaintext:
        raise UsageError("export writes every password unencrypted; add --plaintext to confirm "
                         "(or use `wifisync backup` for an encrypted copy)")
    to_stdout = str(args.file) == "-"
    if not to_stdout:
        refuse_existing(args.file, args.force)
    folder = None if to_stdout else files_folder(args.file)
    with unlocked(args) as (_ctx, vault):
        data = export(vault, args.format, None if folder is None else folder.name)
        count = len(vault.items())
        if to_stdout:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            sys.stderr.write(f"{plural(count, 'item')} exported ({args.format}); "
                             "attachments go beside an export to a file\n")
            return _report_unreadable(vault.unreadable)
        assert folder is not None
        write_private(args.file, data, overwrite=args.force)
        files = export_files(vault, folder, overwrite=args.force)
    sys.stderr.write(f"wifisync: warning: {args.file} holds every password in plain text; "
                     "delete it when you are done\n")
    print(f"{plural(count, 'item')} exported to {args.file} ({args.format})"
          + (f", {plural(files, 'attachment')} to {folder}/" if files else ""))
    return _report_unreadable(vault.unreadable)


def _report_unreadable(unreadable: list[bytes]) -> int:
    """Exit status of an export: 1, with one line, when some items could not be read."""
    if not unreadable:
        return 0
    sys.stderr.write(f"wifisync: {len(unreadable)} item(s) could not be read and are not in "
                     "the export; `wifisync verify` names them\n")
    return 1


def cmd_backup(args: argparse.Namespace) -> int:
    """An encrypted backup: only the master password opens it again."""
    refuse_existing(args.file, args.force)
    counted: list[int] = []
    with unlocked(args) as (_ctx, vault):
        write_private_with(args.file, lambda out: counted.append(write_backup(vault, out)),
                           overwrite=args.force)
    print(f"backup of {plural(counted[0], 'record')} written to {args.file}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore into an empty home; the device becomes the member it was."""
    home = locate_home(args)
    try:
        source = args.file.open("rb")
    except OSError as exc:
        raise WifisyncError(f"cannot read {args.file}: {exc.strerror}") from exc
    with source:
        restored = restore_backup(source, home, PasswordSource(args).current())
    print(restored.identity.device_id_text)
    sys.stderr.write(f"restored {plural(restored.items, 'item')} "
                     f"({plural(restored.records, 'record')}) into "
                     f"{home.data_dir}\n")
    return 0
