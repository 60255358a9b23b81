"""``confirm-deletes``: the user's word on deletes the mass-deletion brake held."""

from __future__ import annotations

import argparse
from typing import Any

from wifisync.cli.common import after_write, loaded, unlocked
from wifisync.errors import ItemNotFoundError
from wifisync.vault import deletebrake


def register(sub: Any) -> None:
    """Add the subcommand."""
    p = sub.add_parser("confirm-deletes",
                       help="apply the deletes held by the mass-deletion brake (or drop them)")
    p.add_argument("--drop", action="store_true",
                   help="forget the held deletes: the items stay")
    p.set_defaults(func=cmd_confirm_deletes)


def cmd_confirm_deletes(args: argparse.Namespace) -> int:
    """Write every held delete (one unlock), or forget them with ``--drop``."""
    if args.drop:
        with loaded(args) as ctx, ctx.store.transaction():
            dropped = deletebrake.release(ctx.store)
        print(f"dropped {len(dropped)} held deletes; those items stay")
        return 0
    with unlocked(args) as (ctx, vault):
        items = deletebrake.held(ctx.store)
        if not items:
            print("no deletes are held")
            return 0
        deleted = 0
        with ctx.store.transaction():
            for item in items:
                try:
                    vault.delete(item)
                    deleted += 1
                except ItemNotFoundError:
                    continue  # deleted meanwhile (here or by a peer)
            vault.merge_pending()
            deletebrake.release(ctx.store)
    after_write(ctx.home)
    print(f"deleted {deleted} items")
    return 0
