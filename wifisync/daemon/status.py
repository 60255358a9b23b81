"""The daemon's live view: the ``/status`` JSON the CLI shows, and systemd's one-line status."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wifisync.model.deviceid import format_device_id, short_device_id
from wifisync.model.membership import Member
from wifisync.net.address import format_address

if TYPE_CHECKING:
    from wifisync.daemon.discovery import DiscoveryManager
    from wifisync.daemon.link import Link
    from wifisync.daemon.peers import PeerManager


def iso_time(t: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC with milliseconds, like every other time wifisync shows."""
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


@dataclass
class PeerNews:
    """What the daemon remembers of a member device between its connections."""

    last_sync: float | None = None
    last_error: str | None = None


@dataclass
class StatusView:
    """Everything the status JSON is made of (the daemon fills it in when asked)."""

    self_id: bytes
    host: str
    port: int
    members: Mapping[bytes, Member]
    peers: PeerManager
    news: Mapping[bytes, PeerNews]
    pairing_open: bool
    mdns_enabled: bool
    discovery: DiscoveryManager | None
    found_by_mdns: Mapping[str, float]

    def name_of(self, device: bytes) -> str:
        """A member's name, else its short device ID."""
        member = self.members.get(device)
        return member.name if member is not None else short_device_id(device)

    def as_json(self) -> dict[str, Any]:
        """The ``/status`` answer (keys documented in the README)."""
        discovery = self.discovery
        return {
            "pid": os.getpid(),
            "device": format_device_id(self.self_id),
            "listen": format_address(self.host, self.port),
            "pairing": self.pairing_open,
            "revoked": self.self_id not in self.members,
            "peers": [self._connected(device, link)
                      for device, link in self.peers.links.items()],
            "away": self._away(),
            "mdns": {
                "enabled": self.mdns_enabled,
                "active": bool(discovery is not None and discovery.active),
                "interfaces": discovery.interface_names() if discovery is not None else [],
                "found": sorted(self.found_by_mdns),
            },
            "dialing": [
                {"address": d.address, "static": d.static,
                 "id": format_device_id(d.device) if d.device else None,
                 "error": d.last_error or None}
                for d in self.peers.dialers.values()
            ],
        }

    def _connected(self, device: bytes, link: Link) -> dict[str, Any]:
        news = self.news.get(device, PeerNews())
        return {"id": format_device_id(device), "name": self.name_of(device), "connected": True,
                "in_sync": link.in_sync,
                "last_sync": iso_time(link.synced_at or news.last_sync),
                "records_behind": link.records_behind, "clock_skew": link.clock_skew,
                "address": link.address,
                "direction": link.direction.value, "since": iso_time(link.connected_at),
                "last_seen": iso_time(link.last_seen)}

    def _away(self) -> list[dict[str, Any]]:
        """Members not connected now: when they last synced, why not now."""
        errors: dict[bytes, str] = {}
        for d in self.peers.dialers.values():
            if d.device is not None and d.last_error:
                errors[d.device] = d.last_error
        links = self.peers.links
        return [
            {"id": format_device_id(device), "name": self.name_of(device),
             "last_sync": iso_time(news.last_sync),
             "last_error": errors.get(device) or news.last_error}
            for device in self.members if device != self.self_id and device not in links
            for news in [self.news.get(device, PeerNews())]
        ]


def status_line(port: int, links: Mapping[bytes, Link],
                last_sync: tuple[float, bytes] | None) -> str:
    """One line for ``systemctl status``: peers connected and the last sync."""
    synced = sum(1 for link in links.values() if link.in_sync)
    line = f"listening on port {port}; {len(links)} peer(s) connected, {synced} in sync"
    if last_sync is not None:
        t, device = last_sync
        line += f"; last sync {time.strftime('%H:%M:%S', time.localtime(t))} with " \
                f"{short_device_id(device)}"
    return line
