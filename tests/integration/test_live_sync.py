"""Real daemons on 127.0.0.1 keep their stores identical: live, relayed, after restarts and cuts."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable

import pytest

from tests.integration.conftest import Device, wait_for
from wifisync.model.identity import DeviceIdentity
from wifisync.store import SqliteStore, sigmarks


@pytest.fixture(scope="module")
def pair(module_devices: Callable[..., list[Device]]) -> tuple[Device, Device]:
    """A and B (B dials A), both daemons running; the tests that share them stop and start B
    and leave both running."""
    a, b = module_devices(2)
    b.peers = [a]
    a.start()
    b.start()
    return a, b


def test_item_written_on_a_arrives_on_b_while_both_run(pair: tuple[Device, Device]) -> None:
    a, b = pair
    wait_for(lambda: a.connected_to(b) and b.connected_to(a), 5, "the session")
    item = a.add("mail", "user=alice", "password=s3cret")
    wait_for(lambda: b.holds(item), 5, "the item on B")
    assert marked_by_daemon(b, item)  # so B's first read checks no signature again
    shown = json.loads(b.cli.ok("show", item, "--json"))
    assert shown["fields"]["password"] == "s3cret"


def marked_by_daemon(device: Device, item: str) -> bool:
    """Whether the device's daemon marked the records of ``item`` it accepted."""
    store = SqliteStore(device.home.store_file)
    try:
        ids = [r.id for r in store.heads(bytes.fromhex(item))]
        key = sigmarks.mark_key(DeviceIdentity.load(device.home.data_dir))
        return set(ids) <= sigmarks.covered(key, store.signature_sets(ids))
    finally:
        store.close()


def test_a_and_c_that_never_connect_sync_through_b(devices: Callable[..., list[Device]]) -> None:
    a, b, c = devices(3)
    b.peers = [a]
    c.peers = [b]
    for d in (a, b, c):
        d.start()
    wait_for(lambda: b.connected_to(a) and c.connected_to(b), 5, "the chain A-B-C")
    from_a = a.add("from A")
    from_c = c.add("from C")
    wait_for(lambda: c.holds(from_a) and a.holds(from_c), 5, "both items at both ends")
    assert not a.connected_to(c) and not c.connected_to(a)
    assert c.device_id not in a.log() and a.device_id not in c.log()


def test_restarted_daemon_catches_up_on_what_it_missed(pair: tuple[Device, Device]) -> None:
    a, b = pair
    wait_for(lambda: a.connected_to(b), 5, "the session")
    assert b.stop() == 0
    missed = [a.add(f"while B was down {i}") for i in range(3)]
    b.start()
    wait_for(lambda: all(b.holds(i) for i in missed), 5, "the missed items on B")


def test_edits_made_while_the_daemon_was_stopped_arrive_once_it_starts(
        pair: tuple[Device, Device]) -> None:
    a, b = pair
    assert b.stop() == 0
    offline = b.add("written offline on B")
    b.start()
    wait_for(lambda: a.holds(offline), 5, "B's offline item on A")


def test_concurrent_edits_of_different_fields_during_a_cut_both_survive(
        pair: tuple[Device, Device]) -> None:
    a, b = pair
    item = a.add("router", "user=admin", "password=old")
    wait_for(lambda: b.holds(item), 5, "the item on B")
    assert b.stop() == 0
    a.cli.ok("edit", item, "--field", "password=new-from-a")
    b.cli.ok("edit", item, "--field", "user=root-from-b")
    b.start()

    def merged(d: Device) -> bool:
        fields = json.loads(d.cli.ok("show", item, "--json"))["fields"]
        return fields == {"user": "root-from-b", "password": "new-from-a"}

    wait_for(lambda: merged(a) and merged(b), 10, "both edits on both devices")


def test_kill_9_during_an_initial_sync_loses_nothing(devices: Callable[..., list[Device]]
                                                     ) -> None:
    a, b = devices(2)
    b.peers = [a]
    _write_items(a, 2000)
    a.start()
    b.start(wait=False)
    wait_for(lambda: b.record_count() > 5, 10, "B to start receiving")
    assert b.proc is not None
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait(5)
    b.proc = None
    b.start()
    total = a.record_count()
    wait_for(lambda: b.record_count() == total, 10, "every record on B after the restart")


def _write_items(device: Device, n: int) -> None:
    """Many items quickly, in one process, as this device (unlock once)."""
    from tests.conftest import PASSWORD
    from wifisync.model.identity import DeviceIdentity
    from wifisync.store.sqlite import SqliteStore
    from wifisync.vault.unlocked import Vault

    store = SqliteStore(device.home.store_file)
    try:
        vault = Vault.unlock(store, DeviceIdentity.load(device.home.data_dir), PASSWORD)
        with store.transaction():
            for i in range(n):
                vault.add(f"bulk item {i}", fields={"password": "x" * 200})
    finally:
        store.close()
