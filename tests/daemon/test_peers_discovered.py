"""Dialers learned from mDNS: capped in number, and gone after a few failed attempts."""

from __future__ import annotations

import asyncio

from wifisync.daemon.peers import MAX_DISCOVERED_ATTEMPTS, MAX_DISCOVERED_DIALERS, PeerManager


async def test_a_replayed_tag_costs_a_bounded_number_of_attempts() -> None:
    attempts: dict[str, int] = {}

    async def dial(address: str) -> object:
        attempts[address] = attempts.get(address, 0) + 1
        raise OSError("connection refused")

    peers = PeerManager(b"\x01" * 32, dial, lambda _d, _a: None)  # type: ignore[arg-type]
    try:
        for n in range(MAX_DISCOVERED_DIALERS + 10):
            peers.add_address(f"10.9.9.9:{1000 + n}", discovered=True)
        assert len(peers.dialers) == MAX_DISCOVERED_DIALERS
        static = peers.add_address("127.0.0.1:9", static=True)
        assert static is not None
        for _ in range(200):  # wake them over and over, as repeated announcements would
            peers.wake()
            await asyncio.sleep(0.02)
            if list(peers.dialers) == ["127.0.0.1:9"]:
                break
        assert list(peers.dialers) == ["127.0.0.1:9"]  # the static one keeps trying
        assert max(v for k, v in attempts.items() if k.startswith("10.")) \
            == MAX_DISCOVERED_ATTEMPTS
    finally:
        await peers.close()
