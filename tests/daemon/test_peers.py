"""The connection manager's rules: one link per device pair, agreed on by both sides."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from wifisync.daemon import peers
from wifisync.daemon.link import CloseCode, Direction, Link, LinkEnd, Timing
from wifisync.daemon.peers import (
    MIN_ATTEMPT_INTERVAL,
    RECENT_CAP,
    STALE_PINGS,
    PeerManager,
    backoff,
)

LOW, HIGH = b"\x01" * 32, b"\x02" * 32
ABNORMAL_CLOSURE = 1006  # the connection dropped without a close frame


class _Ws:
    closed = False


def _link(self_id: bytes, peer: bytes, direction: Direction, quiet: float = 0.0,
          run: str = "") -> Link:
    """A link as the manager sees it, that heard its last frame ``quiet`` seconds ago, from
    the peer's daemon run ``run``."""
    link = Link.__new__(Link)
    link.peer_id = peer
    link.peer_run = run
    link.direction = direction
    link.dialer = self_id if direction is Direction.OUTBOUND else peer
    link.timing = Timing(ping_interval=10.0, peer_timeout=30.0)
    link._loop = asyncio.get_running_loop()
    link._last_rx = link._loop.time() - quiet
    return link


async def _dial(_address: str) -> Any:
    raise OSError("unused")


def _manager(self_id: bytes) -> PeerManager:
    return PeerManager(self_id, _dial, lambda _d, _a: None)


async def test_both_sides_keep_the_link_dialed_by_the_smaller_device_id() -> None:
    on_low, on_high = _manager(LOW), _manager(HIGH)
    # LOW dialed HIGH (LOW's outbound = HIGH's inbound) and HIGH dialed LOW at the same time.
    low_out, low_in = _link(LOW, HIGH, Direction.OUTBOUND), _link(LOW, HIGH, Direction.INBOUND)
    high_in, high_out = _link(HIGH, LOW, Direction.INBOUND), _link(HIGH, LOW, Direction.OUTBOUND)
    assert on_low.survives(low_out, low_in) and not on_low.survives(low_in, low_out)
    assert on_high.survives(high_in, high_out) and not on_high.survives(high_out, high_in)


async def test_a_new_link_from_the_same_dialer_replaces_the_old_one() -> None:
    manager = _manager(LOW)
    old, new = _link(LOW, HIGH, Direction.INBOUND), _link(LOW, HIGH, Direction.INBOUND)
    assert manager.survives(new, old)  # the peer restarted: its old link is dead


async def test_a_new_link_replaces_an_old_one_silent_past_its_pings_whoever_dialed() -> None:
    """The peer came back without closing the old link (a power cut): the returning side
    holds no old link, so the new one must win here too, even against the tie-break."""
    on_low = _manager(LOW)
    stale = _link(LOW, HIGH, Direction.OUTBOUND, quiet=STALE_PINGS * 10.0 + 1)
    live = _link(LOW, HIGH, Direction.OUTBOUND, quiet=10.0 + 0.5)  # a ping is due: alive
    new = _link(LOW, HIGH, Direction.INBOUND)  # dialed by HIGH: loses the tie-break
    assert on_low.survives(new, stale)
    assert not on_low.survives(new, live)


async def test_a_new_link_from_a_new_run_of_the_peer_replaces_the_old_one_at_once() -> None:
    """The peer was killed and restarted before this side read the old link's end: the old
    link is not silent yet, yet its peer holds no such link any more."""
    on_low = _manager(LOW)
    old = _link(LOW, HIGH, Direction.OUTBOUND, run="1" * 16)  # dialed by LOW: would win
    assert on_low.survives(_link(LOW, HIGH, Direction.INBOUND, run="2" * 16), old)
    assert not on_low.survives(_link(LOW, HIGH, Direction.INBOUND, run="1" * 16), old)
    assert not on_low.survives(_link(LOW, HIGH, Direction.INBOUND), old)  # run not said


def test_backoff_grows_with_jitter_and_stays_under_the_cap() -> None:
    firsts = [backoff(0, 0.2, 15.0) for _ in range(200)]
    lates = [backoff(20, 0.2, 15.0) for _ in range(200)]
    assert all(0.1 <= d <= 0.2 for d in firsts)
    assert all(0.1 <= d <= 15.0 for d in lates) and max(lates) > 10.0
    assert len(set(lates)) > 100  # jittered: reconnecting peers do not move in lockstep


def _counting_dial(ends_with: int | None, times: list[float]
                   ) -> Callable[[str], Awaitable[tuple[Link, Callable[[], Awaitable[LinkEnd]]]]]:
    """A dial that reaches HIGH and whose link ends at once with ``ends_with`` (None: fails)."""
    async def dial(_address: str) -> tuple[Link, Callable[[], Awaitable[LinkEnd]]]:
        times.append(time.monotonic())
        if ends_with is None:
            raise OSError("connection refused")
        code = ends_with

        async def run() -> LinkEnd:
            return LinkEnd(code, "ended")
        return _link(LOW, HIGH, Direction.OUTBOUND), run
    return dial


async def _attempts(ends_with: int | None, addresses: int, seconds: float) -> list[float]:
    times: list[float] = []
    manager = PeerManager(LOW, _counting_dial(ends_with, times), lambda _d, _a: None)
    for n in range(addresses):
        manager.add_address(f"127.0.0.{n + 1}:1", device=HIGH).last_good = time.monotonic()
    await asyncio.sleep(seconds)
    await manager.close()
    return times


def _most_in_one_second(times: list[float]) -> int:
    return max(sum(1 for u in times if t <= u < t + 1.0) for t in times)


async def test_a_link_turned_away_at_once_is_not_redialed_in_a_storm() -> None:
    for code in (CloseCode.DUPLICATE, CloseCode.GOING_AWAY, CloseCode.PROTOCOL_ERROR):
        times = await _attempts(code, 1, 1.6)
        assert len(times) >= 2 and _most_in_one_second(times) <= 3, (code, len(times))


async def _after_a_link_that_died_at_once(code: int) -> tuple[list[float], PeerManager]:
    """A dialer's first link ends at once with ``code``; the peer is then down for 2.2 s."""
    times: list[float] = []
    first = _counting_dial(code, times)
    refused = _counting_dial(None, times)

    async def dial(address: str) -> tuple[Link, Callable[[], Awaitable[LinkEnd]]]:
        return await (first if not times else refused)(address)
    manager = PeerManager(LOW, dial, lambda _d, _a: None)
    manager.add_address("127.0.0.1:1")  # a fresh daemon: never reached before
    await asyncio.sleep(2.2)
    return times, manager


async def test_a_peer_whose_first_link_died_at_once_is_retried_as_one_reached_lately() -> None:
    """Killed (or its close frame lost as it stopped) right after the link came up: it is
    restarting. Main backed off from scratch (0.2, 0.4, 0.8, 1.6, 3.2 s...) and came back
    seconds after the peer did; the bench's 7.13-s reconnect."""
    times, manager = await _after_a_link_that_died_at_once(ABNORMAL_CLOSURE)
    await manager.close()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 6 and max(gaps) < RECENT_CAP + 0.1, gaps
    times, manager = await _after_a_link_that_died_at_once(CloseCode.PROTOCOL_ERROR)
    assert all(d.last_good is None for d in manager.dialers.values())  # that one backs off
    await manager.close()


async def test_one_device_is_dialed_at_most_3_times_a_second_over_all_its_addresses() -> None:
    times = await _attempts(None, 3, 1.6)
    assert _most_in_one_second(times) <= 3, len(times)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= MIN_ATTEMPT_INTERVAL - 0.01


async def test_a_dialer_sleeps_without_polling_while_its_device_is_connected() -> None:
    times: list[float] = []
    manager = PeerManager(LOW, _counting_dial(None, times), lambda _d, _a: None)
    manager.links[HIGH] = _link(LOW, HIGH, Direction.INBOUND)
    dialer = manager.add_address("127.0.0.1:1", device=HIGH)
    await asyncio.sleep(0.1)
    assert dialer.task is not None and not times
    timers = [h for h in getattr(asyncio.get_running_loop(), "_scheduled", [])
              if not h.cancelled()]
    assert not timers  # nothing will wake this loop until the link ends
    del manager.links[HIGH]
    manager.detach(_link(LOW, HIGH, Direction.INBOUND))  # not the held link: no effect
    manager._notify()
    await asyncio.sleep(0.1)
    assert times  # the link is gone: it dials
    await manager.close()


class _HeldDial:
    """A dial that is on its way until ``release``; then it fails, or attaches ``ours`` as
    Connections.run_link does and keeps it until ``kept``."""

    def __init__(self, ours: Link, fails: bool) -> None:
        self.ours = ours
        self.fails = fails
        self.release = asyncio.Event()
        self.kept = asyncio.Event()
        self.calls = 0
        self.manager = PeerManager(ours.dialer, self, lambda _d, _a: None)

    async def __call__(self, _address: str) -> tuple[Link, Callable[[], Awaitable[LinkEnd]]]:
        self.calls += 1
        await self.release.wait()
        if self.fails:
            raise OSError("connection refused")

        async def run() -> LinkEnd:
            assert await self.manager.admit(self.ours)
            await self.kept.wait()
            return LinkEnd(CloseCode.GOING_AWAY, "ended")
        return self.ours, run

    async def close(self) -> None:
        self.manager.links.pop(self.ours.peer_id, None)  # not real links: nothing to close
        self.kept.set()
        await self.manager.close()


async def _hold(self_id: bytes, peer: bytes, fails: bool, release_after: float
                ) -> tuple[bool, float]:
    """``peer`` dials us while our dial to it is on its way (for ``release_after`` s, then it
    fails or arrives): whether the peer's link was admitted, and how long that took."""
    dial = _HeldDial(_link(self_id, peer, Direction.OUTBOUND), fails)
    dial.manager.add_address("127.0.0.1:1", device=peer)
    await asyncio.sleep(0.01)  # the dial is on its way
    started = time.monotonic()
    admitting = asyncio.get_running_loop().create_task(
        dial.manager.admit(_link(self_id, peer, Direction.INBOUND)))
    took: list[float] = []
    admitting.add_done_callback(lambda _t: took.append(time.monotonic() - started))
    await asyncio.sleep(release_after)
    dial.release.set()
    admitted = await admitting
    await dial.close()
    return admitted, took[0]


async def test_a_link_the_peer_dialed_waits_for_our_dial_and_loses_to_it() -> None:
    """Both dialed at once: the smaller ID holds the peer's link back until its own dial
    arrives, so the link that loses never starts a session (the peer waits for its HELLO)."""
    dial = _HeldDial(_link(LOW, HIGH, Direction.OUTBOUND), fails=False)
    dial.manager.add_address("127.0.0.1:1")  # whose device is not known yet: it may be HIGH
    await asyncio.sleep(0.01)
    admitting = asyncio.get_running_loop().create_task(
        dial.manager.admit(_link(LOW, HIGH, Direction.INBOUND)))
    await asyncio.sleep(0.1)
    assert not admitting.done() and HIGH not in dial.manager.links  # held: no session yet
    dial.manager.add_address("127.0.0.2:1", device=HIGH)  # the address HIGH's link told
    await asyncio.sleep(0.1)
    assert dial.calls == 1  # no second dial while a link is held: it would be one link more
    dial.release.set()
    assert await admitting is False  # the duplicate: closed before its session started
    assert dial.manager.links[HIGH] is dial.ours
    await dial.close()


async def test_a_held_link_goes_on_when_our_dial_fails() -> None:
    admitted, took = await _hold(LOW, HIGH, fails=True, release_after=0.1)
    assert admitted and 0.1 <= took < 0.5


async def test_a_held_link_waits_at_most_hold_max(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "HOLD_MAX", 0.2)
    admitted, took = await _hold(LOW, HIGH, fails=True, release_after=0.6)
    assert admitted and 0.2 <= took < 0.5


async def test_the_larger_id_never_holds_a_link_back() -> None:
    """A link dialed by the smaller ID wins at the larger whatever the larger is dialing."""
    admitted, took = await _hold(HIGH, LOW, fails=True, release_after=0.2)
    assert admitted and took < 0.1
