"""Real daemons in a line behind fault-injecting proxies: cuts and stalls while every device
writes, then the three stores hold exactly the same records and no edit is lost."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable

from tests.daemon.faultproxy import FaultProxy
from tests.integration.conftest import Device, wait_for
from wifisync.store import SqliteStore

ROUNDS = 12  # each: one fault or repair on one link, then one write on a random device
FAULTS = ("stall", "cut", "resume")  # each link: stalled, then also cut, then repaired
SETTLE_SECONDS = 45.0  # worst case: a dialer backed off towards its 15 s cap during a stall


def record_ids(device: Device) -> set[bytes]:
    """Every record ID in a device's store (no password needed)."""
    store = SqliteStore(device.home.store_file)
    try:
        return set(store.record_ids())
    finally:
        store.close()


def test_three_daemons_converge_through_cuts_stalls_and_concurrent_edits(
        devices: Callable[..., list[Device]]) -> None:
    rng = random.Random(20261126)
    a, b, c = devices(3)
    a_b, b_c = FaultProxy(a.port).start(), FaultProxy(b.port).start()
    try:
        a.start()
        b.start("--peer", a_b.address)
        c.start("--peer", b_c.address)
        wait_for(lambda: a.connected_to(b) and b.connected_to(c), 10, "the line A-B-C")
        shared = a.add("shared", "user=nobody")
        wait_for(lambda: c.holds(shared), 5, "the shared item on C")

        added: list[str] = []
        last_field: dict[str, str] = {}
        started = time.monotonic()
        for n in range(ROUNDS):
            proxy = (a_b, b_c)[n % 2]
            fault = FAULTS[n // 2 % len(FAULTS)]  # rounds 1-3: all three devices cut off
            if fault == "cut":
                proxy.cut()
            elif fault == "stall":
                proxy.stall()
            else:
                proxy.resume()
            writer = rng.choice([a, b, c])
            if n % 2:
                added.append(writer.add(f"round {n} on {writer.name}", f"n={n}"))
            else:
                writer.cli.ok("edit", shared, "--field", f"by_{writer.name}=round {n}")
                last_field[f"by_{writer.name}"] = f"round {n}"
            time.sleep(rng.uniform(0.0, 0.4))
        assert time.monotonic() - started < 60

        a_b.resume()
        b_c.resume()
        wait_for(lambda: record_ids(a) == record_ids(b) == record_ids(c), SETTLE_SECONDS,
                 "the three stores to converge")
        for item in added:
            assert a.holds(item) and c.holds(item)
        for device in (a, b, c):
            fields = json.loads(device.cli.ok("show", shared, "--json"))["fields"]
            assert {k: v for k, v in fields.items() if k.startswith("by_")} == last_field
    finally:
        a_b.close()
        b_c.close()
