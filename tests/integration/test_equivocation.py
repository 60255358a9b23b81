"""An equivocating member, between real daemons: two devices that took different twins of one
record (same author and seq) converge over TLS on the twin with the lowest record ID."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable

from tests.integration.conftest import Device, wait_for
from wifisync.model.clock import hlc_pack
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Kind, Record, RecordHeader, sign_records
from wifisync.model.verifier import InlineVerifier
from wifisync.store.sqlite import SqliteStore
from wifisync.sync.replica import Replica
from wifisync.vault.unlocked import vault_id_of
from wifisync.wallclock import wall_ms


def twins(author: Device) -> tuple[Record, Record]:
    """Two records ``author`` signs with its next seq (one header, two bodies), lowest ID first."""
    identity = DeviceIdentity.load(author.home.data_dir)
    store = SqliteStore(author.home.store_file)
    try:
        vault_id, seq = vault_id_of(store), store.next_seq(identity.device_id)
    finally:
        store.close()
    header = RecordHeader(vault_id, os.urandom(16), Kind.ITEM, identity.device_id, seq,
                          {identity.device_id: seq}, hlc_pack(wall_ms(), 0), False)
    [one] = sign_records(identity, [(header, b"one body")])
    [two] = sign_records(identity, [(header, b"another body")])
    low, high = sorted((one, two), key=lambda r: r.id)
    return low, high


def take(device: Device, record: Record) -> None:
    """Store ``record`` on a stopped device, by the rule its daemon applies."""
    store = SqliteStore(device.home.store_file)
    try:
        self_id = DeviceIdentity.load(device.home.data_dir).device_id
        replica = Replica(store, vault_id_of(store), self_id,
                          verifier=InlineVerifier(), now_ms=wall_ms)
        assert len(replica.apply([record]).applied) == 1
    finally:
        store.close()


def held_and_aside(device: Device) -> tuple[set[bytes], set[bytes]]:
    """The record IDs a device's store holds, and those it keeps aside as twins."""
    db = sqlite3.connect(f"file:{device.home.store_file}?mode=ro", uri=True, timeout=10)
    try:
        held = {bytes(r) for (r,) in db.execute("SELECT id FROM records")}
        aside = {bytes(r) for (r,) in db.execute("SELECT id FROM twins")}
    finally:
        db.close()
    return held, aside


def test_devices_that_took_different_twins_converge_on_the_lowest(
        devices: Callable[..., list[Device]]) -> None:
    hostile, b, c = devices(3)
    hostile.start()
    b.start(peers=[hostile])
    c.start(peers=[hostile])
    wait_for(lambda: b.record_count() == c.record_count() == hostile.record_count(), 15,
             "the three to know each other")
    for device in (hostile, b, c):
        device.stop()
    low, high = twins(hostile)
    take(b, low)
    take(c, high)
    b.start()
    c.start(peers=[b])

    def settled() -> bool:
        hb, ab = held_and_aside(b)
        hc, ac = held_and_aside(c)
        return hb == hc and ab == ac == {high.id} and low.id in hb

    wait_for(settled, 15, "b and c to hold the lower twin and keep the higher aside")
    assert "equivocation" in b.log() + c.log()
    assert "differ even after exchanging" not in b.log() + c.log()
