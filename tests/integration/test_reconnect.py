"""Real daemons, mDNS off: a peer that goes away is not hammered, and one that comes back,
whichever side it is, is reconnected at once."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from tests.daemon.faultproxy import FaultProxy
from tests.integration.conftest import Device, wait_for

MAX_ATTEMPTS_PER_SECOND = 3
RECONNECT_SECONDS = 1.0  # the target is 0.5 s (bench/reconnect.py); slack for a loaded machine


def attempts_per_second(proxy: FaultProxy, seconds: float) -> list[int]:
    """Connections the proxy accepted in each sliding 1 s window over ``seconds``."""
    samples: list[tuple[float, int]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append((time.monotonic(), proxy.connections))
        time.sleep(0.02)
    return [max(c for t, c in samples if t <= t0 + 1.0) - c0 for t0, c0 in samples
            if t0 + 1.0 <= samples[-1][0]]


def test_a_peer_that_stops_is_dialed_at_most_3_times_a_second(
        devices: Callable[..., list[Device]]) -> None:
    a, b = devices(2)
    proxy = FaultProxy(a.port).start()
    try:
        a.start()
        b.start("--peer", proxy.address)
        wait_for(lambda: a.connected_to(b) and b.connected_to(a), 10, "the session")
        assert a.proc is not None
        a.proc.send_signal(signal.SIGTERM)  # count from the start of its shutdown
        windows = attempts_per_second(proxy, 4.0)
        assert a.stop() == 0
        assert max(windows) <= MAX_ATTEMPTS_PER_SECOND, windows
        assert max(windows) >= 1  # it does keep trying
    finally:
        proxy.close()


def test_a_returning_peer_with_no_address_for_us_is_reconnected_at_once(
        devices: Callable[..., list[Device]]) -> None:
    a, b = devices(2)
    b.peers = [a]  # only B knows where the other is
    a.start()
    b.start()
    wait_for(lambda: a.connected_to(b), 10, "the session")
    assert a.stop() == 0
    (a.home.data_dir / "peers.json").unlink(missing_ok=True)  # A cannot dial B
    time.sleep(4.0)  # long enough for a plain exponential backoff to reach seconds
    a.start()
    answered = time.monotonic()
    wait_for(lambda: a.connected_to(b), 10, "the session after A's restart")
    assert time.monotonic() - answered < RECONNECT_SECONDS


def test_a_returning_dialer_reconnects_at_once(devices: Callable[..., list[Device]]) -> None:
    a, b = devices(2)
    b.peers = [a]
    a.start()
    b.start()
    wait_for(lambda: a.connected_to(b), 10, "the session")
    assert b.stop() == 0
    time.sleep(1.5)
    b.start()
    answered = time.monotonic()
    wait_for(lambda: a.connected_to(b), 10, "the session after B's restart")
    assert time.monotonic() - answered < RECONNECT_SECONDS
