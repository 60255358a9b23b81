"""The connection manager: one link per peer device, dialers with backoff, the tie-break.

When two devices dial each other at once, both end up holding two links; the one
dialed by the device with the smaller ID survives on both sides, so they agree
without talking about it. Neither streams on the link that loses: the device with the
smaller ID holds back a link its peer dialed while its own dial to that peer is on its
way, and the peer's session waits for its HELLO. A link from a peer that restarted since
the old one opened (it says so with a new run ID) replaces the old one at once, whoever
dialed: the old one is dead, even if this side has not noticed yet. Dialers back off
exponentially with jitter from the first failure (capped low for a device reached lately,
so a restarted peer is back within half a second), never try one device more than three
times a second, sleep without polling while their device is connected, and treat an
authentication failure (the peer's certificate is not a member's, or it refuses ours) as
something retrying soon cannot fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from wifisync.daemon.dialerrors import plain_error
from wifisync.daemon.link import CloseCode, Link, LinkEnd
from wifisync.errors import AuthenticationError

log = logging.getLogger("wifisync.daemon")

BACKOFF_FIRST = 0.2
BACKOFF_MAX = 15.0
AUTH_BACKOFF_FIRST = 30.0
AUTH_BACKOFF_MAX = 600.0
DIAL_TIMEOUT = 10.0
# mDNS can name any host:port (a stranger may replay a member's tag): such a dialer gives up
# after this many failed attempts unless it ever reached a member, and few exist at once.
MAX_DISCOVERED_ATTEMPTS = 5
MAX_DISCOVERED_DIALERS = 32
MIN_ATTEMPT_INTERVAL = 0.34  # at most 3 connection attempts a second to one device
STALE_PINGS = 1.5  # ping intervals without a frame after which an old link is taken for dead
# (a live link hears a ping or a pong at least once an interval, plus a round trip)
RECENT_WINDOW = 120.0  # a device reached this recently is retried on RECENT_CAP
RECENT_CAP = 0.45  # so a restarted peer that cannot dial us is back within half a second;
# above MIN_ATTEMPT_INTERVAL, so retries keep their jitter (at the pace's limit they would
# all land 0.34 s apart)
HOLD_MAX = 1.0  # at most this long a link the peer dialed waits for our own dial to it
# Links that end at once for these reasons do not make their peer "reached lately": retrying
# it soon will not help, so it backs off exponentially once RECENT_WINDOW has passed.
PEER_FAULTS = frozenset({CloseCode.PROTOCOL_ERROR, CloseCode.UNSUPPORTED, CloseCode.TOO_BIG})


def backoff(attempt: int, first: float, cap: float) -> float:
    """Full-jitter exponential backoff: uniform in [first/2, min(cap, first * 2**attempt)]."""
    top = min(cap, first * (2 ** min(attempt, 30)))
    return random.uniform(min(first / 2, top), top)


@dataclass
class Dialer:
    """Keeps trying one address until a link to whatever member answers there is up."""

    address: str
    static: bool
    device: bytes | None = None  # learned from the certificate the address answered with
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    last_error: str = ""
    discovered: bool = False  # learned from mDNS only: expires unless it reaches a member
    retired: bool = False  # removed from the config: stops once its link, if any, ends
    failures: int = 0  # failed attempts since the last good link
    auth_failures: int = 0  # refusals (not a member, or it refuses us) since the last link
    last_good: float | None = None  # monotonic time a link over this address last ended well
    dialing: bool = False  # a dial is on its way (from the connect to the attach)


class PeerManager:
    """Owns every link and every dialer of the daemon."""

    def __init__(self, self_id: bytes,
                 dial: Callable[[str], Awaitable[tuple[Link, Callable[[], Awaitable[LinkEnd]]]]],
                 on_address: Callable[[bytes, str], None]) -> None:
        self.self_id = self_id
        self.links: dict[bytes, Link] = {}
        self.dialers: dict[str, Dialer] = {}
        self._dial = dial
        self._on_address = on_address
        self._changed = asyncio.Condition()
        self._closing = False
        self._last_attempt: dict[bytes | str, float] = {}
        self._held: dict[bytes, int] = {}  # links held back by admit(), per device

    # --- links ----------------------------------------------------------------------------

    def survives(self, new: Link, old: Link) -> bool:
        """The tie-break: the link dialed by the smaller device ID wins; else the newer one.

        An old link opened by an earlier run of the peer's daemon (it restarted: a kill -9
        whose end this side has not read yet), or that has heard nothing for longer than its
        pings allow (its peer came back without closing it: a power cut, a suspended laptop),
        is taken for dead and the new one wins whoever dialed it; the peer holds no old link
        then, so both sides agree.
        """
        if new.peer_run and old.peer_run and new.peer_run != old.peer_run:
            return True
        if old.quiet_for() > STALE_PINGS * old.timing.ping_interval:
            return True
        preferred = min(self.self_id, new.peer_id)
        if (new.dialer == preferred) != (old.dialer == preferred):
            return new.dialer == preferred
        return True

    def would_lose_to_our_dial(self, link: Link) -> bool:
        """Whether a dial of ours to the link's device, if one is on its way, would replace
        ``link`` (the peer dialed it and we hold the smaller ID): then it waits for that dial."""
        return link.dialer != self.self_id and self.self_id < link.peer_id

    def dialing_to(self, device: bytes) -> bool:
        """Whether a dial that may reach ``device`` is on its way (one to an address whose
        device is not known yet may)."""
        return any(d.dialing and d.device in (device, None) for d in self.dialers.values())

    async def admit(self, link: Link) -> bool:
        """Attach ``link`` once no dial of ours could still replace it (:data:`HOLD_MAX` at
        most); False when it must close as the duplicate. Its session has not started, so
        a link that loses never streams a record."""
        device = link.peer_id
        if self.would_lose_to_our_dial(link) and device not in self.links \
                and self.dialing_to(device):
            held = time.monotonic()
            self._held[device] = self._held.get(device, 0) + 1  # no new dial meanwhile
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(HOLD_MAX), self._changed:
                        await self._changed.wait_for(
                            lambda: self._closing or device in self.links
                            or not self.dialing_to(device))
            finally:
                self._held[device] -= 1
                if not self._held[device]:
                    del self._held[device]
            log.debug("held the link %s dialed for %.3f s while our dial to it was on its way",
                      link.name, time.monotonic() - held)
        return self.attach(link)

    def attach(self, link: Link) -> bool:
        """Register an authenticated link; False when it must close as the duplicate."""
        if self._closing:
            return False
        old = self.links.get(link.peer_id)
        if old is not None:
            if not self.survives(link, old):
                return False
            old.close_soon(CloseCode.DUPLICATE, "duplicate connection")
        self.links[link.peer_id] = link
        self._notify()
        return True

    def detach(self, link: Link) -> None:
        """Forget a link that ended."""
        if self.links.get(link.peer_id) is link:
            del self.links[link.peer_id]
            if time.time() - link.connected_at >= 1.0:  # it was good: come back quickly
                self.heard_from(link.peer_id)
            self._notify()

    @property
    def closing(self) -> bool:
        """Whether the daemon is shutting down (new links are turned away as going away)."""
        return self._closing

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()
        asyncio.get_running_loop().create_task(notify())

    def _busy(self, device: bytes, dialer: Dialer) -> bool:
        """Whether a dial to ``device`` now would open a second link: one is up, held back
        by :meth:`admit`, or being dialed by another of its dialers."""
        return device in self.links or device in self._held or any(
            d is not dialer and d.dialing and d.device == device for d in self.dialers.values())

    async def _wait_gone(self, dialer: Dialer, device: bytes) -> None:
        """Sleep while ``device`` is busy (:meth:`_busy`): woken by detach, the end of a dial,
        wake() or close, never polled."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: not self._busy(device, dialer) or self._closing or dialer.wake.is_set())

    # --- dialers --------------------------------------------------------------------------

    def add_address(self, address: str, static: bool = False, device: bytes | None = None,
                    discovered: bool = False) -> Dialer | None:
        """Dial ``address`` from now on (static peers, address book, discovery).

        A discovered address beyond :data:`MAX_DISCOVERED_DIALERS` is ignored (None).
        """
        dialer = self.dialers.get(address)
        if dialer is None:
            if discovered and sum(d.discovered for d in self.dialers.values()
                                  ) >= MAX_DISCOVERED_DIALERS:
                return None
            dialer = Dialer(address, static, device, discovered=discovered)
            self.dialers[address] = dialer
            dialer.task = asyncio.get_running_loop().create_task(self._run_dialer(dialer))
        dialer.static = dialer.static or static
        if dialer.device is None and device is not None:
            dialer.device = device  # a static address the address book or the peer named
        dialer.discovered = dialer.discovered and discovered and device is None
        return dialer

    def forget_address(self, address: str) -> None:
        """Stop dialing ``address`` (a static peer removed by a reload); a live link stays."""
        dialer = self.dialers.pop(address, None)
        if dialer is not None:
            dialer.retired = True
            dialer.wake.set()
            self._notify()  # a dialer asleep while its device is connected sees it too

    def wake(self, address: str | None = None) -> None:
        """Retry now: discovery saw the peer again, or membership changed."""
        for d in self.dialers.values():
            if address is None or d.address == address:
                d.wake.set()
        self._notify()

    def heard_from(self, device: bytes) -> None:
        """``device`` just reached us: it is back, so our dialers to it start from scratch."""
        now = time.monotonic()
        for d in self.dialers.values():
            if d.device == device:
                d.failures = 0
                d.last_good = now

    def retry_delay(self, dialer: Dialer) -> float:
        """How long to wait after a failure: short for a peer seen lately, else exponential."""
        recent = (dialer.last_good is not None
                  and time.monotonic() - dialer.last_good < RECENT_WINDOW)
        return backoff(dialer.failures, BACKOFF_FIRST, RECENT_CAP if recent else BACKOFF_MAX)

    async def _pace(self, dialer: Dialer) -> None:
        """At most one attempt per MIN_ATTEMPT_INTERVAL to one device, whatever its addresses."""
        key = dialer.device or dialer.address
        now = time.monotonic()
        last = self._last_attempt.get(key, -MIN_ATTEMPT_INTERVAL)
        slot = max(now, last + MIN_ATTEMPT_INTERVAL)
        self._last_attempt[key] = slot  # reserved before sleeping: dialers queue, not bunch
        if slot > now:
            await asyncio.sleep(slot - now)

    async def _sleep(self, dialer: Dialer, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(dialer.wake.wait(), seconds)

    async def _run_dialer(self, dialer: Dialer) -> None:
        while not self._closing and not dialer.retired:
            if dialer.discovered \
                    and dialer.failures + dialer.auth_failures >= MAX_DISCOVERED_ATTEMPTS:
                log.debug("giving up on discovered address %s: %s", dialer.address,
                          dialer.last_error)
                del self.dialers[dialer.address]
                return
            dialer.wake.clear()
            if dialer.device is not None and self._busy(dialer.device, dialer):
                await self._wait_gone(dialer, dialer.device)
                continue
            await self._pace(dialer)
            if self._closing:
                break
            if dialer.device is not None and self._busy(dialer.device, dialer):
                continue  # a link came while we waited for our turn: no second one
            try:
                link, run = await self._dial_once(dialer)
            except AuthenticationError as exc:
                dialer.last_error = str(exc)
                delay = backoff(dialer.auth_failures, AUTH_BACKOFF_FIRST, AUTH_BACKOFF_MAX)
                dialer.auth_failures += 1
                log.warning("peer %s refused: %s; not retrying for %.0f s unless membership "
                            "changes", dialer.address, exc, delay)
                await self._sleep(dialer, delay)
                continue
            except (OSError, aiohttp.ClientError, TimeoutError, ssl.SSLError,
                    asyncio.IncompleteReadError) as exc:
                dialer.last_error = plain_error(exc)
                delay = self.retry_delay(dialer)
                dialer.failures += 1
                log.debug("cannot reach %s (%s); retry in %.1f s", dialer.address,
                          dialer.last_error, delay)
                await self._sleep(dialer, delay)
                continue
            if dialer.device != link.peer_id:
                dialer.device = link.peer_id
            dialer.discovered = False  # it reached a member: keep it like any known address
            self._on_address(link.peer_id, dialer.address)
            dialer.auth_failures = 0
            started = time.monotonic()
            end = await run()
            pause = self._after_link(dialer, end, time.monotonic() - started)
            if pause is not None:
                await self._sleep(dialer, pause)

    async def _dial_once(self, dialer: Dialer
                         ) -> tuple[Link, Callable[[], Awaitable[LinkEnd]]]:
        """One dial, marked as on its way while it lasts.

        A link the peer dialed that waits for it is told once it ended, in a task of its
        own: a dial that succeeded attaches its link before that task runs (nothing is
        awaited in between), so the waiting link meets it and loses.
        """
        dialer.dialing = True
        try:
            return await asyncio.wait_for(self._dial(dialer.address), DIAL_TIMEOUT)
        finally:
            dialer.dialing = False
            self._notify()

    def _after_link(self, dialer: Dialer, end: LinkEnd, lasted: float) -> float | None:
        """How long a dialer waits after its link ended (None: its next turn at once)."""
        if end.code == CloseCode.DUPLICATE:
            return None  # the other link lives on; the next turn waits for it to end
        if end.code == CloseCode.NOT_MEMBER:
            dialer.auth_failures += 1
            return backoff(dialer.auth_failures, AUTH_BACKOFF_FIRST, AUTH_BACKOFF_MAX)
        if end.code == CloseCode.GOING_AWAY or lasted >= 1.0:
            dialer.failures = 0  # it was good or it is restarting: come back quickly
        else:
            dialer.failures += 1  # a link that dies at once must not spin (the pace bounds it)
        if lasted >= 1.0 or end.code not in PEER_FAULTS:
            # it was reached: if it died at once (killed, or its close lost as it stopped),
            # it is likely restarting; backing off from seconds would miss its return
            dialer.last_good = time.monotonic()
        return self.retry_delay(dialer)

    async def close(self) -> None:
        """Stop dialing and close every link (shutdown)."""
        self._closing = True
        self.wake()
        for link in list(self.links.values()):
            link.close_soon(CloseCode.GOING_AWAY, "daemon stopping")
        tasks = [d.task for d in self.dialers.values() if d.task is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=3.0)
            for t in pending:
                t.cancel()
