"""What wifisync says on mDNS and how it listens: service names, the members' tag, interfaces.

Shared by the daemon's discovery (advertise, browse) and the joiner's lookup of a pairing window.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ifaddr
from zeroconf import InterfaceChoice, IPVersion
from zeroconf.asyncio import AsyncZeroconf

from wifisync.errors import ConfigError
from wifisync.model.crypto import derive_key

SERVICE_TYPE = "_wifisync._tcp.local."
PAIRING_SERVICE_TYPE = "_wifisync-pair._tcp.local."
TAG_KEY = b"t"
NAMEPLATE_KEY = b"n"
TAG_WINDOW_SECONDS = 3600
TAG_BYTES = 16
RESOLVE_TIMEOUT_MS = 3000
CLOSE_TIMEOUT_SECONDS = 5.0


# --- the membership tag -------------------------------------------------------------------


def tag_window(now: float) -> int:
    """The number of the tag window ``now`` (Unix seconds) falls in."""
    return int(now // TAG_WINDOW_SECONDS)


def mdns_tag(vault_id: bytes, window: int) -> bytes:
    """The TXT tag members publish during ``window``: unlinkable without the vault ID."""
    key = derive_key(vault_id, "mdns-tag")
    mac = hmac.new(key, window.to_bytes(8, "big"), hashlib.sha256).digest()
    return mac[:TAG_BYTES].hex().encode("ascii")


def is_member_tag(vault_id: bytes, tag: bytes, now: float) -> bool:
    """True when ``tag`` is this vault's tag for the window of ``now`` or a neighbouring one.

    The previous window covers an advertiser that has not rolled over yet; the next one covers
    a browser whose clock is a little behind the advertiser's.
    """
    current = tag_window(now)
    return any(
        hmac.compare_digest(tag, mdns_tag(vault_id, window))
        for window in (current - 1, current, current + 1)
    )


# --- interfaces ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InterfaceState:
    """What discovery needs to know about one network interface at one moment."""

    up: bool
    addresses: tuple[str, ...]


def _operstate_up(name: str) -> bool | None:
    """The kernel's view of whether the interface carries traffic; None where there is no sysfs."""
    if sys.platform != "linux":
        return None
    try:
        # sysfs is memory-backed: this read never waits on a device.
        state = (Path("/sys/class/net") / name / "operstate").read_text().strip()
    except OSError:
        return False
    return state in ("up", "unknown")


def interface_states(names: list[str] | None) -> dict[str, InterfaceState]:
    """IPv4 addresses and up/down state of the named interfaces, or of every non-loopback one."""
    adapters = {adapter.name: adapter for adapter in ifaddr.get_adapters()}
    wanted = names if names else sorted(adapters)
    states: dict[str, InterfaceState] = {}
    for name in wanted:
        adapter = adapters.get(name)
        addresses = tuple(
            str(ip.ip)
            for ip in (adapter.ips if adapter else [])
            if ip.is_IPv4 and not str(ip.ip).startswith("127.")
        )
        if not names and not addresses:
            continue
        up = _operstate_up(name)
        states[name] = InterfaceState(up=bool(addresses) if up is None else up, addresses=addresses)
    return states


def check_interfaces(names: list[str]) -> None:
    """Refuse interface names that do not exist here, in one clear line."""
    known = {adapter.name for adapter in ifaddr.get_adapters()}
    missing = [name for name in names if name not in known]
    if missing:
        raise ConfigError(f"no such network interface: {', '.join(missing)}")


def zeroconf_interfaces(names: list[str] | None, states: dict[str, InterfaceState]) -> Any:
    """What AsyncZeroconf is given: the named interfaces' addresses, or all of them."""
    if not names:
        return InterfaceChoice.All
    return sorted({address for state in states.values() for address in state.addresses})


def new_zeroconf(interfaces: Any) -> AsyncZeroconf:
    """The one place an AsyncZeroconf is made: always with explicit interfaces, IPv4."""
    return AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
