"""The mass-deletion brake with real daemons: a burst of deletes stays on the device that
made it until confirmed there; then it syncs, and the peer logs one line."""

from __future__ import annotations

from collections.abc import Callable

from tests.integration.conftest import Device, wait_for
from tests.integration.test_live_sync import _write_items


def brake(device: Device, items: int) -> None:
    """A config with a brake that trips at 3 deletes (more than a fifth of 10 items)."""
    path = device.cli.home / "config" / "config.toml"
    path.write_text(path.read_text().replace(
        "[daemon]", f"delete_brake_items = {items}\n[daemon]"))


def test_a_burst_of_deletes_is_held_until_confirmed_and_the_peer_logs_it(
        devices: Callable[..., list[Device]]) -> None:
    a, b = devices(2)
    b.peers = [a]
    for d in (a, b):
        brake(d, 3)
    _write_items(a, 10)
    a.start()
    b.start()
    listed = [line.split()[0] for line in a.cli.ok("list").splitlines() if line.strip()]
    ids = [i for i in listed if len(i) >= 8][:5]
    wait_for(lambda: b.record_count() == a.record_count(), 10, "the items on B")

    out = [a.cli.ok("rm", item) for item in ids]
    assert out[0].startswith("deleted") and out[1].startswith("deleted")
    assert all(o.startswith("held") for o in out[2:]), out
    assert "confirm-deletes" in out[2]
    wait_for(lambda: len(b.cli.ok("list").splitlines()) == len(listed) - 2, 10,
             "the two deletes before the brake on B")
    assert len(a.cli.ok("list").splitlines()) == len(listed) - 2  # held: nothing written

    assert a.cli.ok("confirm-deletes").strip() == "deleted 3 items"
    wait_for(lambda: len(b.cli.ok("list").splitlines()) == len(listed) - 5, 10,
             "the confirmed deletes on B")
    assert a.cli.ok("confirm-deletes").strip() == "no deletes are held"
    wait_for(lambda: "deleted 5 items within 60 s" in b.log() or
             "deleted 3 items within 60 s" in b.log(), 5, "B's one line")
    assert sum("items within 60 s" in line for line in b.log().splitlines()) == 1
