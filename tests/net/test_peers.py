"""The connection manager's rules: one link per device pair, agreed on by both sides."""

from __future__ import annotations

from typing import Any

from wifisync.net.link import Direction, Link
from wifisync.net.peers import PeerManager, backoff

LOW, HIGH = b"\x01" * 32, b"\x02" * 32


class _Ws:
    closed = False


def _link(self_id: bytes, peer: bytes, direction: Direction) -> Link:
    link = Link.__new__(Link)
    link.peer_id = peer
    link.direction = direction
    link.dialer = self_id if direction is Direction.OUTBOUND else peer
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


def test_backoff_grows_with_jitter_and_stays_under_the_cap() -> None:
    firsts = [backoff(0, 0.2, 15.0) for _ in range(200)]
    lates = [backoff(20, 0.2, 15.0) for _ in range(200)]
    assert all(0.1 <= d <= 0.2 for d in firsts)
    assert all(0.1 <= d <= 15.0 for d in lates) and max(lates) > 10.0
    assert len(set(lates)) > 100  # jittered: reconnecting peers do not move in lockstep
