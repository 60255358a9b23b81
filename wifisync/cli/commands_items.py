"""Vault and item commands: init, id, add, list, show, edit, rm, history, passwd, verify.

Reading commands add no record (they may store signature marks, see sigmarks.py). Every
writing command, having unlocked the vault anyway, also settles items that hold
concurrent versions from other devices (the field-by-field merge of DESIGN.md section 2),
so conflicts shown by ``show`` last until the next write.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from wifisync.cli.commands_everyday import add_generator_arguments, new_password, resolve_any
from wifisync.cli.common import (
    ENV_NEW_PASSWORD,
    PasswordSource,
    after_write,
    field_arg,
    field_name,
    is_initialised,
    locate_home,
    read_secret,
    unlocked,
)
from wifisync.cli.fast import add_list_arguments
from wifisync.cli.listing import (
    iso_time,
    json_element,
    print_json,
    summarise,
    table_line,
    write_json_elements,
    write_lines,
)
from wifisync.config import MAX_DEVICE_NAME, load_config
from wifisync.errors import AlreadyInitialisedError, IntegrityError, UsageError
from wifisync.model.crypto import KdfParams
from wifisync.model.deviceid import format_device_id, short_device_id
from wifisync.model.identity import DeviceIdentity
from wifisync.model.items import ITEM_TYPES, ItemState
from wifisync.model.membership import named_devices
from wifisync.model.records import Kind, Record
from wifisync.termtext import shown
from wifisync.vault import deletebrake
from wifisync.vault.attachments import Attachment, of_state
from wifisync.vault.lookup import matches, plural
from wifisync.vault.unlocked import Vault


def register(sub: Any) -> None:
    """Add this module's subcommands."""
    p = sub.add_parser("init", help="create this device and a new vault")
    p.add_argument("--name", help="this device's name as other members see it "
                   "(default: [device] name in the config, else the host name)")
    _allow_weak(p)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("id", help="print this device's ID")
    p.set_defaults(func=cmd_id)

    p = sub.add_parser("add", help="add an item; prints its ID")
    p.add_argument("title")
    p.add_argument("--type", default="login", choices=ITEM_TYPES, help="default: login")
    _field_options(p)
    p.add_argument("--tag", action="append", default=[], metavar="TAG",
                   help="a tag (repeatable)")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("list", help="list or search items (no field values)")
    add_list_arguments(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="show one item with its fields")
    _item_argument(p)
    p.add_argument("--json", action="store_true", help="print a JSON object (every value)")
    p.add_argument("--reveal", action="store_true", help="print hidden fields' values too")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("edit", help="change an item's title, type, tags or fields")
    _item_argument(p)
    p.add_argument("--title")
    p.add_argument("--type", choices=ITEM_TYPES)
    _field_options(p)
    p.add_argument("--unset", action="append", default=[], metavar="NAME",
                   help="remove a field (repeatable)")
    p.add_argument("--tag", action="append", metavar="TAG",
                   help="replace the item's tags with these (repeatable)")
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("rm", help="delete an item")
    _item_argument(p)
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("history", help="every version of an item, oldest first")
    _item_argument(p)
    p.add_argument("--json", action="store_true", help="print a JSON array (every value)")
    p.add_argument("--reveal", action="store_true", help="print hidden fields' values too")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("passwd", help="change the master password")
    _allow_weak(p)
    p.set_defaults(func=cmd_passwd)

    p = sub.add_parser("verify", help="check every record's signature and encryption, "
                       "trusting nothing checked before")
    p.set_defaults(func=cmd_verify)


def _item_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("item", metavar="ITEM", help="ID, unique ID prefix, or title (any case)")


def _allow_weak(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-weak", action="store_true",
                   help="accept a master password that is easy to guess")


def check_strength(password: str, allow_weak: bool) -> None:
    """Estimate a new master password's strength: warn when weak, refuse below the floor."""
    from wifisync.vault.passwords import STRONG, WEAK_FLOOR, strength

    estimate = strength(password)
    if estimate.score >= STRONG:
        return
    if estimate.score < WEAK_FLOOR and not allow_weak:
        raise UsageError(f"this master password is too easy to guess ({estimate.describe()}); "
                         "use a passphrase of several random words (`wifisync generate "
                         "--words 6`), or add --allow-weak")
    sys.stderr.write(f"wifisync: warning: {estimate.describe()}; a passphrase of several "
                     "random words is safer\n")


def _field_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--field", action="append", default=[], type=field_arg,
                   metavar="NAME=VALUE", help="set a field (repeatable)")
    p.add_argument("--secret", action="append", default=[], type=field_name, metavar="NAME",
                   help="set a hidden field, its value asked for without echo (or one line "
                   "of standard input), so it never shows in the command line (repeatable)")
    p.add_argument("--generate", action="append", default=[], type=field_name, metavar="NAME",
                   help="set a hidden field to a new random password, printed nowhere "
                   "(repeatable; see `wifisync get`)")
    add_generator_arguments(p, "--generate's password")


# --- formatting --------------------------------------------------------------------------


HIDDEN_MASK = "******** (hidden; --reveal shows it)"


def _state_lines(state: ItemState, indent: str = "", reveal: bool = True) -> list[str]:
    lines = [f"{indent}title:   {state.title}", f"{indent}type:    {state.type}"]
    if state.tags:
        lines.append(f"{indent}tags:    {', '.join(state.tags)}")
    values = state.values
    hidden = set() if reveal else set(state.hidden)
    if values:
        lines.append(f"{indent}fields:")
        for name, value in values.items():
            head = f"{indent}  {name}: "
            text = HIDDEN_MASK if name in hidden else value
            # Continuation lines of a multi-line value line up under its first line.
            lines.append(head + text.replace("\n", "\n" + " " * len(head)))
    files = of_state(state)
    if files:
        lines.append(f"{indent}attachments:")
        lines += [f"{indent}  {a.name}  ({size_text(a.ref.size)})" for a in files]
    return lines


def size_text(n: int) -> str:
    """A byte count as people read it: 512 B, 1.5 KiB, 20.0 MiB."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


def attachment_json(a: Attachment) -> dict[str, Any]:
    """One attachment as JSON output shows it."""
    return {"name": a.name, "size": a.ref.size, "sha256": a.ref.sha256.hex(),
            "added": iso_time(a.added)}


def _fields_with_secrets(args: argparse.Namespace) -> dict[str, str]:
    """``--field`` values, each ``--secret`` read from the terminal or standard input, and
    each ``--generate`` a new password (never printed)."""
    fields = dict(args.field)
    for name in args.secret:
        fields[name] = read_secret(f"{name}: ")
    for name in args.generate:
        fields[name] = new_password(args)
    return fields


def _hidden_names(args: argparse.Namespace) -> list[str]:
    return [*args.secret, *args.generate]


# --- commands ----------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    """Create the device identity and a new vault; refuse, changing nothing, if one exists."""
    home = locate_home(args)
    config = load_config(home)
    if is_initialised(home):
        raise AlreadyInitialisedError(
            f"{home.data_dir} already holds a device; nothing changed")
    name = config.device.display_name if args.name is None else args.name
    if not name.strip() or len(name) > MAX_DEVICE_NAME or not name.isprintable():
        raise UsageError(f"--name: expected a printable name of 1-{MAX_DEVICE_NAME} characters")
    password = PasswordSource(args).new()
    check_strength(password, args.allow_weak)
    kdf = KdfParams.fresh(config.vault.kdf_opslimit, config.vault.kdf_memlimit)
    identity = DeviceIdentity.generate()
    with home.creating_store() as store:
        Vault.create(store, identity, name, password, kdf)
        identity.save(home.data_dir)
    print(identity.device_id_text)
    return 0


def cmd_id(args: argparse.Namespace) -> int:
    """Print the formatted device ID."""
    home = locate_home(args)
    load_config(home)
    print(DeviceIdentity.load(home.data_dir).device_id_text)
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    """Add an item and print its ID alone."""
    if not args.title.strip():
        raise UsageError("the title must not be empty")
    with unlocked(args) as (ctx, vault):
        item = vault.add(args.title, args.type, _fields_with_secrets(args), args.tag,
                         hidden=_hidden_names(args))
        vault.merge_pending()
    after_write(ctx.home)
    print(item.hex())
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """List items without their field values, or those a search matches.

    Items are read in batches and only what is printed is kept (a line, or the JSON
    object): memory grows with the output, never with the records behind it.
    """
    with unlocked(args) as (ctx, vault):
        total = 0
        keys: list[str] = []  # title in lower case, NUL, ID: sorts as (title, ID) would
        found: list[str] = []  # the output of each item, rendered
        for view in vault.iter_items():
            total += 1
            s = summarise(view)
            if matches(s, args.query, args.tag, args.type):
                keys.append(f"{s.title.lower()}\0{s.id}")
                found.append(json_element(s.public()) if args.json else table_line(s))
        never_synced = (not total and ctx.store.max_seq(ctx.identity.device_id) == 0
                        and not ctx.store.held_items(Kind.ITEM))
    order = sorted(range(len(found)), key=keys.__getitem__)
    del keys
    (write_json_elements if args.json else write_lines)(found[i] for i in order)
    if vault.unreadable:
        raise IntegrityError(
            f"{len(vault.unreadable)} item(s) could not be read and are not listed (a record "
            "was altered or is not valid); `wifisync verify` names them")
    if found:
        return 0
    if never_synced:
        sys.stderr.write("this device has not received the vault's items yet: start the "
                         "daemon (`wifisync daemon`, or its service) so it syncs with "
                         "another member\n")
    elif not total:
        sys.stderr.write("no items yet; add one with `wifisync add TITLE`\n")
    else:
        sys.stderr.write(f"no item matches (of {plural(total, 'item')})\n")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Show one item with its field values."""
    with unlocked(args) as (_ctx, vault):
        view = vault.get(vault.resolve(args.item))
    files = of_state(view.state)
    if args.json:
        print_json({**summarise(view).public(), "fields": view.state.values,
                    "attachments": [attachment_json(a) for a in files],
                     "conflicts": view.conflicts})
        return 0
    print(f"id:      {view.id_text}")
    print("\n".join(_state_lines(view.state, reveal=args.reveal)))
    print(f"updated: {iso_time(view.state.updated)}")
    if view.conflicts:
        print(f"conflicts: {plural(view.conflicts, 'concurrent version')}, shown merged; "
              "the next change on this device settles them")
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    """Change some attributes or fields of an item."""
    if (args.title is None and args.type is None and not args.field and not args.secret
            and not args.generate and not args.unset and args.tag is None):
        raise UsageError("nothing to change: give --title, --type, --field, --secret, "
                         "--generate, --unset or --tag")
    if args.title is not None and not args.title.strip():
        raise UsageError("the title must not be empty")
    with unlocked(args) as (ctx, vault):
        item = vault.resolve(args.item)
        hidden = None
        if args.secret or args.generate:
            hidden = [*vault.get(item).state.hidden, *_hidden_names(args)]
        vault.edit(item, title=args.title, fields=_fields_with_secrets(args), unset=args.unset,
                   tags=args.tag, type_=args.type, hidden=hidden)
        vault.merge_pending()
    after_write(ctx.home)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    """Delete an item (a tombstone that syncs like any edit)."""
    with unlocked(args) as (ctx, vault):
        item = vault.resolve(args.item)
        with ctx.store.transaction():
            braking = deletebrake.should_hold(ctx.store, ctx.config.vault.delete_brake)
            if braking:
                count = deletebrake.hold(ctx.store, item)
        if braking:
            print(f"held {item.hex()}: this device deleted many items within a minute; "
                  f"{count} deletes wait for `wifisync confirm-deletes` (or --drop)")
            return 0
        vault.delete(item)
        vault.merge_pending()
    after_write(ctx.home)
    print(f"deleted {item.hex()}")
    return 0


def _version(record: Record, state: ItemState | None, names: dict[bytes, str]
             ) -> dict[str, Any]:
    h = record.header
    entry: dict[str, Any] = {
        "record": record.id.hex(), "time": iso_time(h.time),
        "author": format_device_id(h.author), "author_name": names.get(h.author, ""),
        "seq": h.seq, "deleted": h.deleted,
    }
    if state is not None:
        entry.update(title=state.title, type=state.type, tags=state.tags, fields=state.values,
                     attachments=[attachment_json(a) for a in of_state(state)])
    return entry


def cmd_history(args: argparse.Namespace) -> int:
    """Every version of an item in the log, oldest first."""
    with unlocked(args) as (ctx, vault):
        item = resolve_any(vault, args.item)
        versions = vault.history(item)
        names = {d: m.name for d, m in named_devices(ctx.store).items()}
    entries = [_version(r, state, names) for r, state in versions]
    if args.json:
        print_json(entries)
        return 0
    for (record, state), entry in zip(versions, entries, strict=True):
        who = short_device_id(record.header.author)
        if entry["author_name"]:
            who += f" ({shown(entry['author_name'])})"
        print(f"{entry['time']}  by {who}  #{entry['seq']}"
              + ("  deleted" if state is None else ""))
        if state is not None:
            print("\n".join(_state_lines(state, indent="  ", reveal=args.reveal)))
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    """Re-wrap the vault key under a new master password."""
    with unlocked(args, agent=False) as (ctx, vault):  # the current password, always
        new = PasswordSource(args).new(env=ENV_NEW_PASSWORD)
        check_strength(new, args.allow_weak)
        vault.change_password(new, KdfParams.fresh(ctx.config.vault.kdf_opslimit,
                                                   ctx.config.vault.kdf_memlimit))
        vault.merge_pending()
    after_write(ctx.home)
    sys.stderr.write("master password changed\n")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check the whole store; a tampered record is the one-line error of exit status 1."""
    with unlocked(args) as (_ctx, vault):
        checked = vault.verify_all()
    print(f"{plural(checked, 'record')} checked: every signature is a member's and every item "
          "decrypts; the store is intact")
    return 0
