"""Daemon and membership commands: daemon, status, devices, grant, revoke."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import sys
from typing import Any

from wifisync.cli.commands_everyday import unlock_state
from wifisync.cli.common import Context, after_write, loaded, locate_home
from wifisync.client.control import daemon_status
from wifisync.config import load_config
from wifisync.errors import UsageError, WifisyncError
from wifisync.model.deviceid import format_device_id, parse_device_id
from wifisync.model.membership import Member, named_devices
from wifisync.net.address import parse_address
from wifisync.store.addressbook import AddressBook
from wifisync.termtext import shown
from wifisync.vault.lookup import plural
from wifisync.vault.unlocked import vault_id_of


def _host_port(text: str) -> str:
    try:
        parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds between 0.1 and 3600, got {text!r}")
    return value


def register(sub: Any) -> None:
    """Add this module's subcommands."""
    p = sub.add_parser("daemon", help="run the sync daemon in the foreground")
    p.add_argument("--listen", type=_host_port, metavar="HOST:PORT",
                   help="address to serve peers on (default: daemon.listen in the config)")
    p.add_argument("--peer", type=_host_port, action="append", default=[], metavar="HOST:PORT",
                   help="a static peer to dial (repeatable; added to daemon.peers)")
    p.set_defaults(func=cmd_daemon)

    p = sub.add_parser("status", help="this device, its vault, the daemon and its peers")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--watch", action="store_true",
                   help="redraw every few seconds until interrupted (with --json: one object "
                        "per line)")
    p.add_argument("--interval", type=_seconds, default=2.0, metavar="SECONDS",
                   help="how often --watch redraws (default 2)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("devices", help="the member devices of the vault")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("grant", help="let a relay write and delete items (it gets the "
                       "member role; asks for the master password)")
    p.add_argument("device", metavar="DEVICE", help="device ID, ID prefix or unique name")
    p.set_defaults(func=cmd_grant)

    p = sub.add_parser("revoke", help="remove a device from the vault for good")
    p.add_argument("device", metavar="DEVICE", help="device ID, ID prefix or unique name")
    p.set_defaults(func=cmd_revoke)


# --- daemon ---------------------------------------------------------------------------------


def cmd_daemon(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM or SIGINT."""
    from wifisync.daemon.daemon import (
        Daemon,  # aiohttp is imported only by the command that needs it
    )
    from wifisync.daemon.logsetup import setup_daemon_logging
    from wifisync.daemon.process import run_daemon

    home = locate_home(args)
    config = load_config(home)
    setup_daemon_logging(config.daemon.log_level)
    daemon = Daemon(home, config, listen=args.listen, peers=args.peer)
    return run_daemon(daemon.run())


# --- status and devices ---------------------------------------------------------------------


def _live(ctx: Context) -> dict[str, Any] | None:
    try:
        return daemon_status(ctx.home)
    except WifisyncError:
        return None


def _connected(live: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in (live or {}).get("peers", [])}


def _device_rows(ctx: Context, live: dict[str, Any] | None) -> list[dict[str, Any]]:
    connected = _connected(live)
    me = ctx.identity.device_id
    rows = []
    for device, m in sorted(named_devices(ctx.store).items(), key=lambda kv: (kv[1].name, kv[0])):
        did = format_device_id(device)
        rows.append({"id": did, "name": m.name, "self": device == me, "revoked": m.revoked,
                     "admitted": m.admitted, "role": m.role, "connected": did in connected})
    return rows


def standing(m: Member | None) -> str:
    """One line on where a device stands in the vault."""
    if m is None:
        return "not a member of this vault"
    if m.revoked:
        return "revoked: other members refuse its connections and later records"
    if not m.admitted:
        return ("not admitted: the device that paired it was revoked before any member "
                "held its membership; pair it again (`wifisync join CODE` keeps its data)")
    return "relay (stores and relays; cannot write items)" if not m.holds_key else "member"


def cmd_devices(args: argparse.Namespace) -> int:
    """List the members with whether the daemon holds a session with each."""
    with loaded(args) as ctx:
        rows = _device_rows(ctx, _live(ctx))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        flags = [f for f, on in (("this device", r["self"]), ("revoked", r["revoked"]),
                                 ("not admitted: pair again", not r["admitted"]),
                                 ("relay", r["role"] != "member"),
                                 ("connected", r["connected"])) if on]
        print(f"{r['id']}  {shown(r['name'])}" + (f"  ({', '.join(flags)})" if flags else ""))
    return 0


def _counts(ctx: Context) -> tuple[int, int]:
    """Live items and records, counted in SQL: no record is read (100k items: ~30 ms)."""
    return ctx.store.count_live_items(), ctx.store.count_records()


def status_report(args: argparse.Namespace) -> dict[str, Any]:
    """Device, vault, daemon, mDNS and peers: the store's view merged with the daemon's."""
    with loaded(args) as ctx:
        me = ctx.identity.device_id
        live = _live(ctx)
        all_members = named_devices(ctx.store)
        own = all_members.get(me)
        live_peers = {p["id"]: p for p in [*(live or {}).get("away", []),
                                           *(live or {}).get("peers", [])]}
        book = AddressBook(ctx.home.data_dir).all()
        peers = []
        for device, m in sorted(all_members.items(), key=lambda kv: (kv[1].name, kv[0])):
            if device == me or not m.current:
                continue
            did = format_device_id(device)
            link = live_peers.get(did, {})
            peers.append({
                "id": did, "name": m.name,
                "connected": bool(link.get("connected")),
                "in_sync": bool(link.get("in_sync")),
                "last_sync": link.get("last_sync"),
                "records_behind": link.get("records_behind"),
                "last_error": link.get("last_error"),
                "address": link.get("address") or book.get(device),
                "last_seen": link.get("last_seen"),
            })
        items, records = _counts(ctx)
        mdns = (live or {}).get("mdns") or {"enabled": ctx.config.daemon.mdns, "active": False,
                                            "interfaces": [], "found": []}
        return {
            "id": format_device_id(me),
            "name": own.name if own else "",
            "standing": standing(own),
            "revoked": own is None or own.revoked or bool((live or {}).get("revoked")),
            "vault": {"id": vault_id_of(ctx.store).hex(), "items": items, "records": records},
            "daemon": {"running": live is not None,
                       "listen": live.get("listen") if live else None,
                       "pid": live.get("pid") if live else None},
            "mdns": mdns,
            "peers": peers,
            **unlock_state(ctx.home.runtime_dir),
        }


def _when(iso: str | None) -> str:
    """``2026-11-28T16:00:01.123Z`` as ``2026-11-28 16:00:01 UTC``."""
    return iso[:19].replace("T", " ") + " UTC" if iso else "never (since the daemon started)"


def status_lines(result: dict[str, Any]) -> list[str]:
    """The status as text, one line per fact."""
    vault, daemon, mdns = result["vault"], result["daemon"], result["mdns"]
    lines = [f"device  {result['id']}  {shown(result['name'])}",
             f"vault   {vault['id']}  ({plural(vault['items'], 'item')}, "
             f"{plural(vault['records'], 'record')})"]
    if result["revoked"]:
        lines.append("REVOKED this device was revoked from the vault: no member syncs with it; "
                     "join again as a new device to get the vault back")
    elif result["standing"] != "member":
        lines.append(f"member  {result['standing']}")
    if daemon["running"]:
        lines.append(f"daemon  running (pid {daemon['pid']}), listening on {daemon['listen']}")
        if not mdns["enabled"]:
            lines.append("mdns    off (daemon.mdns = false): peers only from daemon.peers and "
                         "remembered addresses")
        elif mdns["active"]:
            lines.append(f"mdns    active on {', '.join(mdns['interfaces']) or 'every interface'}"
                         f"; {len(mdns['found'])} member address(es) seen")
        else:
            lines.append("mdns    no usable network interface (no IPv4 address); waiting")
    else:
        lines.append("daemon  not running (start it: wifisync service install --now, or "
                     "wifisync daemon)")
    for p in result["peers"]:
        short = str(p["id"]).split("-")[0]
        if p["connected"]:
            state = "connected, in sync" if p["in_sync"] else (
                "connected, syncing" + (f" ({p['records_behind']} records behind)"
                                        if p["records_behind"] else ""))
            state += f" at {shown(p['address'])}"
        else:
            state = "not connected" + (f" (last address {shown(p['address'])})"
                                       if p["address"] else "")
        detail = f"; last sync {_when(p['last_sync'])}" if daemon["running"] else ""
        if p["last_error"] and not p["connected"]:
            detail += f"; last error: {shown(p['last_error'])}"
        lines.append(f"peer    {short}  {shown(p['name'])}  {state}{detail}")
    if not result["peers"]:
        lines.append("peers   none yet: pair a device with `wifisync pair`")
    if result["unlocked"]:
        lines.append(f"vault   unlocked until {result['unlocked_until'] or '`wifisync lock`'}")
    else:
        lines.append("vault   locked (`wifisync unlock` to use it without the password)")
    return lines


def cmd_status(args: argparse.Namespace) -> int:
    """Report device, vault, daemon and peers; works with the daemon stopped."""
    if not args.watch:
        result = status_report(args)
        print(json.dumps(result, indent=2) if args.json else "\n".join(status_lines(result)))
        return 0
    import time

    redraw = sys.stdout.isatty() and not args.json
    try:
        while True:
            result = status_report(args)
            if args.json:
                print(json.dumps(result), flush=True)
            else:
                stamp = time.strftime("%H:%M:%S")
                text = "\n".join([*status_lines(result),
                                  f"(every {args.interval:g} s, {stamp}; Ctrl-C to stop)"])
                # Home, then clear to the end: the table is redrawn in place, no flicker.
                sys.stdout.write(("\x1b[H\x1b[J" if redraw else "") + text + "\n\n")
                sys.stdout.flush()
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


# --- revoke ---------------------------------------------------------------------------------


def resolve_device(all_members: dict[bytes, Member], ref: str) -> Member:
    """A member by full ID, ID prefix (dashes optional) or unique name."""
    try:
        device = parse_device_id(ref)
    except (ValueError, WifisyncError):
        device = None
    if device is not None and device in all_members:
        return all_members[device]
    key = ref.replace("-", "").upper()
    by_prefix = [m for d, m in all_members.items()
                 if len(key) >= 4 and format_device_id(d).replace("-", "").startswith(key)]
    by_name = [m for m in all_members.values() if m.name == ref]
    matches = {m.device_id: m for m in [*by_prefix, *by_name]}
    if len(matches) == 1:
        return next(iter(matches.values()))
    if not matches:
        raise UsageError(f"no member device matches {ref!r}; see `wifisync devices`")
    raise UsageError(f"{ref!r} matches {len(matches)} devices; use a longer ID prefix")


def cmd_grant(args: argparse.Namespace) -> int:
    """A member that holds the key grants a relay the member role."""
    from wifisync.cli.common import unlocked
    from wifisync.vault.members import grant

    with unlocked(args) as (ctx, vault):
        target = resolve_device(named_devices(ctx.store), args.device)
        if not grant(vault.author, target):
            print(f"{target.name} already has the member role")
            return 0
        after_write(ctx.home)
    print(f"granted {target.name} ({format_device_id(target.device_id)}) the member role: "
          "its item records and deletions count from now on")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Write the revocation record, saying what this device knows of the revoked one."""
    from wifisync.model.clock import hlc_wall_ms
    from wifisync.vault.author import Author
    from wifisync.vault.members import AlreadyRevokedError, revoke

    with loaded(args) as ctx:
        target = resolve_device(named_devices(ctx.store), args.device)
        try:
            done = revoke(Author(ctx.store, ctx.identity, vault_id_of(ctx.store)), target)
        except AlreadyRevokedError:
            print(f"{format_device_id(target.device_id)} is already revoked")
            return 0
        last = ctx.store.records_after(target.device_id, done.last_seq - 1, 1) \
            if done.last_seq else []
        with contextlib.suppress(WifisyncError):
            AddressBook(ctx.home.data_dir).forget(target.device_id)
        after_write(ctx.home)
    print(f"revoked {format_device_id(target.device_id)} ({shown(target.name)})")
    if last:
        when = datetime.datetime.fromtimestamp(hlc_wall_ms(last[0].header.time) / 1000,
                                               datetime.UTC)
        print(f"  last heard from it: its record #{done.last_seq}, written "
              f"{when:%Y-%m-%d %H:%M} UTC")
    else:
        print("  last heard from it: never (this device holds no record it wrote)")
    print(f"  made inactive here: {done.made_inactive} of its records. Records it wrote that "
          "this device has not seen stay valid only if another member held them when it "
          "learned of this revocation")
    if done.kept_paired:
        print("  devices it paired, which stay members: "
              + ", ".join(shown(m.name) for m in done.kept_paired))
    if done.lost_paired:
        print("  devices it paired whose membership is no longer in force (pair them again "
              "with `wifisync join`): " + ", ".join(shown(m.name) for m in done.lost_paired))
    return 0
