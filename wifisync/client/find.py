"""Finding a pairing window: the joiner looks up the member showing a nameplate over mDNS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo

from wifisync.errors import ConfigError, PairingError
from wifisync.net.address import format_address
from wifisync.net.mdns import (
    CLOSE_TIMEOUT_SECONDS,
    NAMEPLATE_KEY,
    PAIRING_SERVICE_TYPE,
    RESOLVE_TIMEOUT_MS,
    check_interfaces,
    interface_states,
    new_zeroconf,
    zeroconf_interfaces,
)

log = logging.getLogger("wifisync.discovery")


def _usable_interfaces(interfaces: list[str] | None) -> Any:
    """What to bind mDNS to for the lookup; one clear error when no interface can be used."""
    if interfaces:
        check_interfaces(interfaces)
    states = interface_states(interfaces or None)
    bind_to = zeroconf_interfaces(interfaces or None, states)
    if not bind_to or not states:
        where = ", ".join(interfaces) if interfaces else "any network interface"
        raise ConfigError(f"no IPv4 address on {where} to look for the pairing device by "
                          "mDNS; give its address with --address HOST:PORT")
    return bind_to


async def async_find_pairing(
    nameplate: str, *, interfaces: list[str] | None, timeout: float
) -> tuple[str, int]:
    """Find the member whose open pairing window carries ``nameplate``; (host, port)."""
    aiozc = new_zeroconf(_usable_interfaces(interfaces))
    found: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
    tasks: set[asyncio.Task[None]] = set()

    async def resolve(service_type: str, name: str) -> None:
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(aiozc.zeroconf, RESOLVE_TIMEOUT_MS):
            return
        hosts = info.parsed_addresses(IPVersion.V4Only)
        if info.properties.get(NAMEPLATE_KEY) != nameplate.encode() or not hosts:
            return
        assert info.port is not None
        if not found.done():
            found.set_result((hosts[0], info.port))

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is not ServiceStateChange.Removed:
            task = asyncio.create_task(resolve(service_type, name), name="mdns-pair-resolve")
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    browser = AsyncServiceBrowser(aiozc.zeroconf, [PAIRING_SERVICE_TYPE], handlers=[on_change])
    try:
        host, port = await asyncio.wait_for(found, timeout)
    except TimeoutError:
        raise PairingError(
            f"no device offers pairing code {nameplate}-... on the local network "
            f"(waited {timeout:g} s); give its address with --address"
        ) from None
    finally:
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await browser.async_cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(aiozc.async_close(), CLOSE_TIMEOUT_SECONDS)
    log.info("mdns: pairing service found at %s", format_address(host, port))
    return host, port
