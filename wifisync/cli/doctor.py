"""`wifisync doctor`: each thing a working sync needs, checked, with the fix when it fails."""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wifisync.config import Config, load_config
from wifisync.errors import WifisyncError
from wifisync.home import Home
from wifisync.model.deviceid import format_device_id
from wifisync.net.address import format_address, parse_address

PORT_TIMEOUT = 2.0
MAX_CLOCK_SKEW = 60.0  # seconds; record times and the tag windows of mDNS rely on the clock
IFF_UP, IFF_MULTICAST = 0x1, 0x1000


@dataclass(frozen=True, slots=True)
class Check:
    """One check's verdict: ok True, failed False, or None when it does not apply."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""

    def line(self) -> str:
        """``ok    daemon: running (pid 12)``, ``FAIL  ...; fix: ...``."""
        label = {True: "ok  ", False: "FAIL", None: "skip"}[self.ok]
        fix = f"; fix: {self.fix}" if self.ok is False and self.fix else ""
        return f"{label}  {self.name}: {self.detail}{fix}"


def _permissions(home: Home) -> Check:
    uid = os.getuid()
    wrong: list[str] = []
    for d in (home.config_dir, home.data_dir, home.runtime_dir):
        if not d.exists():
            continue
        st = d.stat()
        if st.st_uid != uid or stat.S_IMODE(st.st_mode) & 0o077:
            wrong.append(f"{d} ({stat.S_IMODE(st.st_mode):o})")
        for f in d.iterdir() if d.is_dir() else []:
            fst = f.lstat()
            if stat.S_ISREG(fst.st_mode) and (fst.st_uid != uid or fst.st_mode & 0o077):
                wrong.append(f"{f} ({stat.S_IMODE(fst.st_mode):o})")
    if wrong:
        return Check("permissions", False, "readable by others or not yours: "
                     + ", ".join(wrong[:5]), "chmod go= on each (chmod 700 folders, 600 files)")
    return Check("permissions", True, "the home's folders and files are yours alone")


def _store(home: Home) -> Check:
    if not home.store_file.exists():
        return Check("store", False, f"no vault at {home.store_file}",
                     "wifisync init (a new vault) or wifisync join CODE (an existing one)")
    try:
        db = sqlite3.connect(f"file:{home.store_file}?mode=ro", uri=True, timeout=5)
        try:
            verdict = [row[0] for row in db.execute("PRAGMA quick_check")]
        finally:
            db.close()
    except sqlite3.Error as exc:
        verdict = [str(exc)]
    if verdict != ["ok"]:
        return Check("store", False, f"{home.store_file} is damaged: {'; '.join(verdict[:3])}",
                     "restore a backup (wifisync restore FILE into a new --home), or join "
                     "again as a new device")
    return Check("store", True, f"{home.store_file} passes SQLite's quick check")


def _membership(home: Home) -> Check:
    from wifisync.model.identity import DeviceIdentity
    from wifisync.model.membership import named_devices
    from wifisync.store.sqlite import SqliteStore

    try:
        me = DeviceIdentity.load(home.data_dir).device_id
        store = SqliteStore(home.store_file)
        try:
            own = named_devices(store).get(me)
        finally:
            store.close()
    except (WifisyncError, sqlite3.Error) as exc:
        return Check("membership", False, f"cannot read: {exc}", "see the store check above")
    if own is None or own.revoked:
        return Check("membership", False, f"this device ({format_device_id(me)[:7]}) was "
                     "revoked: no member syncs with it",
                     "join again as a new device: wifisync --home NEW join CODE")
    return Check("membership", True, f"this device ({own.name}) is a current member")


def _service(system: str) -> Check:
    from wifisync.service import installed_path, unit_enabled

    path = installed_path(system)
    if not path.exists():
        return Check("service", False, f"not installed ({path} missing)",
                     "wifisync service install --now")
    if system == "Linux" and not unit_enabled():
        return Check("service", False, f"{path} installed but not enabled",
                     "systemctl --user enable --now wifisync")
    return Check("service", True, f"installed ({path})")


def _daemon(live: dict[str, Any] | None, error: str | None) -> Check:
    if error:
        return Check("daemon", False, error, "restart it: systemctl --user restart wifisync")
    if live is None:
        return Check("daemon", False, "not running",
                     "wifisync service install --now (or run wifisync daemon)")
    return Check("daemon", True, f"running (pid {live.get('pid')}), listening on "
                 f"{live.get('listen')}")


def _port(live: dict[str, Any] | None) -> Check:
    if live is None:
        return Check("port", None, "the daemon is not running")
    host, port = parse_address(str(live["listen"]))
    target = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    try:
        socket.create_connection((target, port), PORT_TIMEOUT).close()
    except OSError as exc:
        return Check("port", False, f"{format_address(target, port)} does not accept connections "
                     f"({exc.strerror or exc})", "check daemon.listen and local firewall rules")
    return Check("port", True, f"{format_address(target, port)} accepts connections")


def _interface_flags(name: str) -> int | None:
    try:
        return int(Path("/sys/class/net", name, "flags").read_text().strip(), 16)
    except (OSError, ValueError):
        return None


def _multicast(config: Config) -> Check:
    if not config.daemon.mdns:
        return Check("multicast", None, "mDNS is off (daemon.mdns = false)")
    from wifisync.net.mdns import interface_states

    names = list(config.daemon.interfaces)
    states = interface_states(names or None)
    usable, problems = [], []
    for name, state in sorted(states.items()):
        flags = _interface_flags(name)
        if not state.addresses:
            problems.append(f"{name} has no IPv4 address")
        elif not state.up or (flags is not None and not flags & IFF_UP):
            problems.append(f"{name} is down")
        elif flags is not None and not flags & IFF_MULTICAST:
            problems.append(f"{name} does not do multicast")
        else:
            usable.append(name)
    fix = "connect to the home network, or set daemon.interfaces to an interface that is " \
          "up with an IPv4 address (ip -brief address)"
    if not usable:
        what = "; ".join(problems) or "no network interface with an IPv4 address"
        return Check("multicast", False, what, fix)
    if names and problems:
        return Check("multicast", False, "; ".join(problems), fix)
    return Check("multicast", True, f"possible on {', '.join(usable)}")


def _peers(live: dict[str, Any] | None) -> Iterator[Check]:
    if live is None:
        yield Check("peers", None, "the daemon is not running")
        return
    peers = [*live.get("peers", []), *live.get("away", [])]
    found = live.get("mdns", {}).get("found", [])
    if not peers:
        yield Check("peers", None, "no other member yet (pair one with wifisync pair)")
        return
    connected = [p for p in peers if p.get("connected")]
    summary = f"{len(connected)} of {len(peers)} connected; mDNS showed {len(found)} " \
              "member address(es)"
    away = [f"{p.get('name') or p['id'][:7]} ({p.get('last_error') or 'not seen'})" for p in peers
            if not p.get("connected")]
    if away:
        yield Check("peers", False, f"{summary}; not connected: {', '.join(away)}",
                    "start wifisync on them; if mDNS cannot reach them, add HOST:PORT to "
                    "daemon.peers")
    else:
        yield Check("peers", True, summary)
    for p in connected:
        skew = p.get("clock_skew")
        if skew is None:
            continue
        name = f"clock {p.get('name') or p['id'][:7]}"
        if abs(skew) > MAX_CLOCK_SKEW:
            yield Check(name, False, f"{skew:+.0f} s apart from this device",
                        "turn on time sync (timedatectl set-ntp true) on both devices")
        else:
            yield Check(name, True, f"{skew:+.1f} s apart")


def run_checks(home: Home, system: str) -> list[Check]:
    """Every check, in the order a person would fix them."""
    from wifisync.client.control import daemon_status

    checks: list[Check] = []
    live: dict[str, Any] | None = None
    error: str | None = None
    try:
        live = daemon_status(home)
    except WifisyncError as exc:
        error = str(exc)
    try:
        config: Config | None = load_config(home)
        checks.append(Check("config", True, f"{home.config_file} is valid"
                            if home.config_file.exists() else "no config file: all defaults"))
    except WifisyncError as exc:
        config = None
        checks.append(Check("config", False, str(exc), "correct the key named (see "
                            "config.example.toml)"))
    steps: list[Callable[[], Check]] = [
        lambda: _permissions(home), lambda: _store(home), lambda: _membership(home),
        lambda: _daemon(live, error), lambda: _service(system), lambda: _port(live)]
    if config is not None:
        steps.append(lambda: _multicast(config))
    for step in steps:
        checks.append(step())
    checks.extend(_peers(live))
    return checks
