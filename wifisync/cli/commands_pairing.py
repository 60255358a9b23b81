"""Pairing commands: `pair` on a member opens a window, `join CODE` on a new device uses it."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from wifisync.cli.common import locate_home
from wifisync.config import MAX_DEVICE_NAME, load_config
from wifisync.errors import AlreadyInitialisedError, PairingError, UsageError
from wifisync.home import Home
from wifisync.model.deviceid import format_device_id
from wifisync.model.identity import DeviceIdentity
from wifisync.net.address import format_address, parse_address
from wifisync.store.sqlite import SqliteStore
from wifisync.termtext import shown

# asyncio, the pairing protocol and the sync core load only when pair/join run: every
# other command (`list` above all) would pay for them at start-up.

MDNS_FIND_TIMEOUT = 10.0


def register(sub: Any) -> None:
    """Add this module's subcommands."""
    p = sub.add_parser("pair", help="let a new device join: print a one-use pairing code")
    p.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                   help="how long the code stays valid (default: daemon.pairing_timeout)")
    p.add_argument("--relay", action="store_true",
                   help="the new device only stores and relays (a NAS without the master "
                   "password): it cannot write or delete items until `wifisync grant`")
    p.set_defaults(func=cmd_pair)

    p = sub.add_parser("join", help="join a vault with a code from `wifisync pair`")
    p.add_argument("code", help="the code `wifisync pair` printed, e.g. 42-maple-violin")
    p.add_argument("--address", metavar="HOST:PORT",
                   help="where the member's daemon listens (default: find it by mDNS)")
    p.add_argument("--name", help="this device's name as other members see it "
                   "(default: [device] name in the config, else the host name)")
    p.set_defaults(func=cmd_join)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= 86400):
        raise argparse.ArgumentTypeError("expected 0-86400 seconds")
    return value


def cmd_pair(args: argparse.Namespace) -> int:
    """Open a window on the running daemon, print its code, wait for a device to join."""
    import asyncio

    from wifisync.client.pairing import request_pairing

    home = locate_home(args)
    load_config(home)

    def show(code: str) -> None:
        print(f"Pairing code: {code}", flush=True)

    outcome = asyncio.run(request_pairing(home, args.timeout, show, relay=args.relay))
    if outcome.get("outcome") == "joined":
        print(f"Device {shown(outcome.get('name'))} ({shown(outcome.get('device'))}) joined.",
              flush=True)
        return 0
    reason = outcome.get("reason") or f"pairing ended: {outcome.get('outcome')}"
    raise PairingError(f"{reason}; no device joined")


def cmd_join(args: argparse.Namespace) -> int:
    """Join the vault of the member that shows this code; refuse if this home holds a vault."""
    import asyncio

    from wifisync.pairing.bootstrap import check_offer, readmit
    from wifisync.pairing.code import PairingCode
    from wifisync.pairing.messages import held_vault_tag
    from wifisync.store.addressbook import AddressBook
    from wifisync.vault.author import Author
    from wifisync.vault.members import acknowledge
    from wifisync.vault.unlocked import META_VAULT_ID
    from wifisync.wallclock import wall_ms

    code = PairingCode.parse(args.code)
    home = locate_home(args)
    config = load_config(home)
    name = config.device.display_name if args.name is None else args.name
    if not name.strip() or len(name) > MAX_DEVICE_NAME or not name.isprintable():
        raise UsageError(f"--name: expected a printable name of 1-{MAX_DEVICE_NAME} characters")
    host, port = "", 0
    if args.address is not None:
        try:
            host, port = parse_address(args.address)
        except ValueError as exc:
            raise UsageError(f"--address: {exc}") from None
    held_vault: bytes | None = None
    if home.store_file.exists():
        store = SqliteStore(home.store_file)
        try:
            held_vault = store.get_meta(META_VAULT_ID)
        finally:
            store.close()
    if held_vault is not None and not DeviceIdentity.exists(home.data_dir):
        refuse_if_holding_vault_without_identity()
    fresh_identity = not DeviceIdentity.exists(home.data_dir)
    identity = DeviceIdentity.generate() if fresh_identity else DeviceIdentity.load(home.data_dir)

    async def exchange() -> Any:
        from wifisync.client.join import request_join

        nonlocal host, port
        if args.address is None:
            from wifisync.client.find import async_find_pairing

            print(f"looking on the local network for the device showing code "
                  f"{code.nameplate}-... (mDNS, up to {MDNS_FIND_TIMEOUT:g} s; --address "
                  "HOST:PORT skips this)", file=sys.stderr, flush=True)
            host, port = await async_find_pairing(
                str(code.nameplate), interfaces=list(config.daemon.interfaces) or None,
                timeout=MDNS_FIND_TIMEOUT)
        holds = None if held_vault is None else held_vault_tag(held_vault)
        return await request_join(host, port, code, identity, name, holds)

    offer = asyncio.run(exchange())
    checked = check_offer(offer, identity, wall_ms)
    if held_vault is not None:
        store = SqliteStore(home.store_file)
        try:
            readmit(store, checked, identity.device_id, wall_ms)
            acknowledge(Author(store, identity, checked.vault_id))
            kept = store.count_records()
        finally:
            store.close()
        AddressBook(home.data_dir).set(checked.sponsor.device_id, format_address(host, port))
        print(f"Re-admitted to vault {checked.vault_id.hex()} as {name} "
              f"({identity.device_id_text}) by {shown(checked.sponsor.name)}; kept the {kept} "
              "records "
              "this device holds.", flush=True)
        return 0
    _store_joined(home, identity, fresh_identity, checked)
    AddressBook(home.data_dir).set(checked.sponsor.device_id, format_address(host, port))
    sponsor = f"{shown(checked.sponsor.name)} ({format_device_id(checked.sponsor.device_id)})"
    print(f"Joined vault {checked.vault_id.hex()} as {name} ({identity.device_id_text}), "
          f"paired with {sponsor}; "
          f"{len(checked.members)} members.", flush=True)
    print("Start `wifisync daemon` to sync; the master password is needed only to read items.",
          file=sys.stderr)
    return 0


def refuse_if_holding_vault_without_identity() -> None:
    """A store without this device's key cannot be re-admitted: refuse, change nothing."""
    raise AlreadyInitialisedError(
        "this home holds a vault but no device key; `join` needs an empty home or the "
        "device that holds the vault (use another --home)")


def _store_joined(home: Home, identity: DeviceIdentity, fresh_identity: bool,
                  checked: Any) -> None:
    """Write identity, vault ID and records; a failure leaves the home as it was."""
    from wifisync.pairing.bootstrap import store_offer
    from wifisync.wallclock import wall_ms

    with home.creating_store() as store:
        store_offer(store, checked, identity.device_id, wall_ms)
        if fresh_identity:
            identity.save(home.data_dir)
