"""mDNS discovery: members find each other's addresses on the LAN; TLS settles identity."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

from zeroconf import IPVersion, ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from wifisync.net.mdns import (
    CLOSE_TIMEOUT_SECONDS,
    NAMEPLATE_KEY,
    PAIRING_SERVICE_TYPE,
    RESOLVE_TIMEOUT_MS,
    SERVICE_TYPE,
    TAG_KEY,
    InterfaceState,
    check_interfaces,
    interface_states,
    is_member_tag,
    mdns_tag,
    new_zeroconf,
    tag_window,
    zeroconf_interfaces,
)

log = logging.getLogger("wifisync.discovery")

# Linux tells us about link and address changes (netlink), so we look at the interfaces when told
# and every RECHECK_SECONDS (the tag window clock); elsewhere we poll. Each wake of an idle daemon
# costs ~0.5 ms of CPU, which is why we do not poll where the kernel can tell us.
RECHECK_SECONDS = 30.0
INTERFACE_POLL_SECONDS = 5.0
INTERFACE_SETTLE_SECONDS = 0.2
_RTMGRP_LINK = 0x1
_RTMGRP_IPV4_IFADDR = 0x10
OWN_NAMES_KEPT = 16
# A host flooding the LAN with services gets this many lookups at a time, no more.
MAX_RESOLVING = 32

FoundCallback = Callable[[str, int], None]


def _random_label() -> str:
    """A fresh name that tells nobody which device it is."""
    return secrets.token_hex(8)


# --- the manager --------------------------------------------------------------------------


class DiscoveryManager:
    """Owns the AsyncZeroconf instance; advertises this device and browses for members."""

    def __init__(
        self,
        *,
        interfaces: list[str] | None,
        port: int,
        vault_id: bytes,
        instance: str,
        on_found: FoundCallback,
    ) -> None:
        self._names = list(interfaces) if interfaces else None
        self._port = port
        self._vault_id = vault_id
        # Shown in our own log lines only; never published (published names are random).
        self._instance = instance
        self._on_found = on_found
        self._aiozc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._interface_states: dict[str, InterfaceState] = {}
        self._member_info: ServiceInfo | None = None
        self._pairing: tuple[str, int] | None = None
        self._pairing_info: ServiceInfo | None = None
        # Names we published lately (ours to ignore when browsing); insertion-ordered, bounded.
        self._own_names: dict[str, None] = {}
        self._window = -1
        self._announce_lock = asyncio.Lock()
        self._resolving: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True between async_start and async_stop."""
        return self._watcher is not None

    @property
    def active(self) -> bool:
        """Whether mDNS is announcing and browsing right now (an interface had an address)."""
        return self._aiozc is not None

    def interface_names(self) -> list[str]:
        """The interfaces mDNS can use now: up, with an IPv4 address."""
        return sorted(name for name, state in self._interface_states.items()
                      if state.up and state.addresses)

    async def async_start(self) -> None:
        """Start browsing and announcing; returns at once, announcing finishes in the background."""
        if self._names:
            check_interfaces(self._names)
        self._interface_states = interface_states(self._names)
        if self._addresses():
            try:
                self._bring_up()
            except OSError as exc:
                # The daemon still syncs with static and remembered peers; the watcher retries.
                log.warning("mdns: cannot start yet: %s", exc)
                self._aiozc = None
        else:
            where = ", ".join(self._names) if self._names else "any interface"
            log.warning("mdns: no usable network interface (no IPv4 address on %s); peers are "
                        "found only through daemon.peers and remembered addresses until one "
                        "comes up", where)
        self._watcher = asyncio.create_task(self._watch(), name="mdns-watch")

    async def async_stop(self) -> None:
        """Withdraw everything we announced and close zeroconf."""
        if self._browser is not None:
            await self._browser.async_cancel()  # first, so no new resolve task starts
            self._browser = None
        tasks = [t for t in (self._watcher, *self._tasks, *self._resolving.values()) if t]
        self._watcher = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._resolving.clear()
        aiozc, self._aiozc = self._aiozc, None
        if aiozc is None:
            return
        try:
            await asyncio.wait_for(aiozc.async_close(), CLOSE_TIMEOUT_SECONDS)
        except (TimeoutError, OSError) as exc:
            log.warning("mdns: closing did not finish cleanly: %s", exc)
        log.info("mdns: stopped")

    async def async_advertise_pairing(self, nameplate: str, port: int) -> None:
        """Announce an open pairing window so `wifisync join CODE` can find this device."""
        self._pairing = (nameplate, port)
        async with self._announce_lock:
            await self._sync_pairing()

    async def async_withdraw_pairing(self) -> None:
        """Take the pairing announcement down (window closed, used or expired)."""
        self._pairing = None
        async with self._announce_lock:
            await self._sync_pairing()

    def show_pairing(self, nameplate: str | None, port: int) -> None:
        """For synchronous callers (a window opened or closed): advertise or withdraw in the
        background; calls take effect in order."""
        if nameplate is None:
            self._spawn(self.async_withdraw_pairing(), "mdns-pairing")
        else:
            self._spawn(self.async_advertise_pairing(nameplate, port), "mdns-pairing")

    # --- announcing ---

    def _addresses(self) -> list[str]:
        states = self._interface_states.values()
        return sorted({a for state in states if state.up for a in state.addresses})

    def _bring_up(self) -> None:
        self._aiozc = new_zeroconf(zeroconf_interfaces(self._names, self._interface_states))
        self._start_browser()
        self._spawn(self._announce(), "mdns-announce")

    def _start_browser(self) -> None:
        assert self._aiozc is not None
        self._browser = AsyncServiceBrowser(
            self._aiozc.zeroconf, [SERVICE_TYPE], handlers=[self._on_service_state_change]
        )

    def _info(self, type_: str, properties: dict[bytes, bytes], port: int) -> ServiceInfo:
        label = _random_label()
        name = f"{label}.{type_}"
        self._own_names[name] = None
        while len(self._own_names) > OWN_NAMES_KEPT:
            del self._own_names[next(iter(self._own_names))]
        return ServiceInfo(
            type_,
            name,
            port=port,
            properties=properties,
            server=f"ws-{label}.local.",
            parsed_addresses=self._addresses(),
        )

    async def _register(self, info: ServiceInfo) -> None:
        assert self._aiozc is not None
        # Names are random 64-bit labels, so probing for uniqueness would only add a second.
        task = await self._aiozc.async_register_service(info, cooperating_responders=True)
        await task

    async def _unregister(self, info: ServiceInfo | None) -> None:
        if info is None or self._aiozc is None:
            return
        task = await self._aiozc.async_unregister_service(info)
        await task

    async def _announce(self) -> None:
        """(Re)announce under fresh names: at start, an interface back up, a new tag window."""
        async with self._announce_lock:
            await self._unregister(self._member_info)
            self._window = tag_window(time.time())
            tag = mdns_tag(self._vault_id, self._window)
            self._member_info = self._info(SERVICE_TYPE, {TAG_KEY: tag}, self._port)
            await self._register(self._member_info)
            log.info(
                "mdns: %s announced on %s port %d",
                self._instance,
                ", ".join(self._addresses()),
                self._port,
            )
            await self._sync_pairing()

    async def _sync_pairing(self) -> None:
        """Make the announced pairing service match ``self._pairing`` (fresh name each time)."""
        if self._pairing_info is not None:
            await self._unregister(self._pairing_info)
            self._pairing_info = None
            log.info("mdns: pairing service withdrawn")
        if self._pairing is None or self._aiozc is None:
            return
        nameplate, port = self._pairing
        self._pairing_info = self._info(
            PAIRING_SERVICE_TYPE, {NAMEPLATE_KEY: nameplate.encode()}, port
        )
        await self._register(self._pairing_info)
        log.info("mdns: pairing service announced on port %d", port)

    # --- browsing ---

    def _on_service_state_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if name in self._own_names:
            return
        if state_change is ServiceStateChange.Removed:
            log.debug("mdns: service %s said goodbye", name)
            return
        running = self._resolving.get(name)
        if running is not None and not running.done():
            return
        if len(self._resolving) >= MAX_RESOLVING:
            log.debug("mdns: too many services at once; %s left for its next announcement", name)
            return
        task = asyncio.create_task(self._resolve(service_type, name), name="mdns-resolve")
        self._resolving[name] = task
        task.add_done_callback(lambda t: self._task_done(t, name))

    async def _resolve(self, service_type: str, name: str) -> None:
        if self._aiozc is None:
            return
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self._aiozc.zeroconf, RESOLVE_TIMEOUT_MS):
            log.debug("mdns: %s did not answer", name)
            return
        hosts = info.parsed_addresses(IPVersion.V4Only)
        tag = info.properties.get(TAG_KEY)
        if tag is None or not is_member_tag(self._vault_id, tag, time.time()):
            log.debug("mdns: ignoring %s at %s: not a member's tag", name, ", ".join(hosts))
            return
        assert info.port is not None
        for host in hosts:
            log.info("mdns: member found at %s:%d", host, info.port)
            self._on_found(host, info.port)

    # --- watching interfaces and the clock ---

    async def _watch(self) -> None:
        events = _InterfaceEvents()
        told = events.open()
        try:
            while True:
                if told:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(events.changed.wait(), RECHECK_SECONDS)
                    await asyncio.sleep(INTERFACE_SETTLE_SECONDS)  # one look after a burst
                    events.changed.clear()
                else:
                    await asyncio.sleep(INTERFACE_POLL_SECONDS)
                try:
                    await self._check()
                except OSError as exc:
                    log.warning("mdns: interface check failed: %s", exc)
        finally:
            events.close()

    async def _check(self) -> None:
        before, self._interface_states = self._interface_states, interface_states(self._names)
        came_back = False
        for name in sorted(before.keys() | self._interface_states.keys()):
            old = before.get(name, InterfaceState(up=False, addresses=()))
            new = self._interface_states.get(name, InterfaceState(up=False, addresses=()))
            if old == new:
                continue
            if old.up and not new.up:
                log.warning("mdns: interface %s is down", name)
            elif new.up:
                log.info("mdns: interface %s is up (%s)", name, ", ".join(new.addresses) or "-")
                came_back = True
        if self._aiozc is None:
            if self._addresses():
                self._bring_up()
            return
        if came_back:
            await self._aiozc.async_update_interfaces(
                interfaces=zeroconf_interfaces(self._names, self._interface_states)
            )
            # A fresh browser reports every cached member again and queries the network at once;
            # fresh names make members that missed us while we were cut off report us again.
            if self._browser is not None:
                await self._browser.async_cancel()
            self._start_browser()
            self._spawn(self._announce(), "mdns-announce")
        elif self._window != tag_window(time.time()) and not self._announce_lock.locked():
            log.info("mdns: tag window rolled over; announcing under new names")
            self._spawn(self._announce(), "mdns-announce")

    # --- task ownership ---

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None], resolving: str | None = None) -> None:
        self._tasks.discard(task)
        if resolving is not None and self._resolving.get(resolving) is task:
            del self._resolving[resolving]
        if not task.cancelled() and task.exception() is not None:
            log.warning("mdns: %s failed: %r", task.get_name(), task.exception())


class _InterfaceEvents:
    """Sets ``changed`` whenever the kernel reports an interface or IPv4 address change (Linux)."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self._sock: socket.socket | None = None

    def open(self) -> bool:
        """Subscribe; False where there is no netlink (then the caller polls)."""
        if not hasattr(socket, "AF_NETLINK"):
            return False
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            sock.setblocking(False)
            sock.bind((0, _RTMGRP_LINK | _RTMGRP_IPV4_IFADDR))
        except OSError as exc:
            log.debug("mdns: no netlink (%s); polling interfaces", exc)
            return False
        asyncio.get_running_loop().add_reader(sock.fileno(), self._drain)
        self._sock = sock
        return True

    def _drain(self) -> None:
        assert self._sock is not None
        while True:
            try:
                self._sock.recv(65536)
            except OSError:  # drained, or ENOBUFS (missed some): a full look follows anyway
                break
        self.changed.set()

    def close(self) -> None:
        """Unsubscribe."""
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
