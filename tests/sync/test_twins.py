"""An equivocating member (two records with one seq) splits no honest replicas: the twin
with the lowest record ID holds the place everywhere, the others are kept aside."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.sync.helpers import Device, craft, household, identity, join_device, sync
from wifisync.model import crypto
from wifisync.model.clock import hlc_pack
from wifisync.model.membership import Member, _views, compute, member_records
from wifisync.model.records import (
    VAULT_KEY_ITEM,
    Kind,
    Membership,
    Record,
    WrappedVaultKey,
    member_item_id,
    payload_key,
    seal_item_body,
)
from wifisync.store import MemoryStore, RecordStore, SqliteStore
from wifisync.wallclock import wall_ms


def sealed(device: Device, item: bytes, title: str) -> Record:
    """A readable item version ``device`` signs at its next seq (not stored)."""
    time = hlc_pack(wall_ms(), 0)
    header = craft(device, item, time=time).header
    payload = {"attrs": {"title": [title, time]}, "fields": {"pin": [title, time]},
               "history": {}}
    return craft(device, item, body=seal_item_body(payload_key(device.vault_key), header,
                                                   payload), time=time)


def ordered(*records: Record) -> list[Record]:
    """The twins by record ID: the first one wins."""
    return sorted(records, key=lambda r: r.id)


def twins_where_y_loses(a: Device) -> tuple[bytes, bytes, Record, Record]:
    """Two items x and y, and twins ``a`` signs about each at one seq: the one about y loses."""
    item_x, item_y = crypto.random_bytes(16), crypto.random_bytes(16)
    for _ in range(100):  # each try is a coin toss on the record IDs
        low, high = ordered(sealed(a, item_x, "x"), sealed(a, item_y, "y"))
        if high.header.item == item_y:
            return item_x, item_y, low, high
    raise AssertionError("100 coin tosses all went the other way")


def titles(device: Device) -> dict[bytes, str]:
    """Every readable live item's title, by item."""
    return {v.id: v.state.title for v in device.vault.items()}


def converged(*devices: Device) -> None:
    """Every device holds the same records, twins aside, membership and item states."""
    first = devices[0]
    for d in devices[1:]:
        assert d.state() == first.state()
        assert list(d.store.synced_ids()) == list(first.store.synced_ids())
        assert d.replica.named_devices() == first.replica.named_devices() == fresh(d)
        assert titles(d) == titles(first)
        assert {r.id for r in d.store.inactive_records()} == \
            {r.id for r in first.store.inactive_records()}


def fresh(device: Device) -> dict[bytes, Member]:
    """The membership a device's MEMBER records make, computed anew (no cached view)."""
    return compute(device.replica.vault_id, member_records(device.store)).members


def sync_clean(a: Device, b: Device) -> None:
    """A session that ends with equal fingerprints."""
    wire = sync(a, b)
    assert not any(s.stats.fingerprint_mismatch for s in wire.sessions)


def test_replicas_that_took_different_twins_of_items_converge_and_say_so(
        caplog: pytest.LogCaptureFixture) -> None:
    a, b, c = household(3)
    one, two = sealed(a, crypto.random_bytes(16), "one"), sealed(a, crypto.random_bytes(16), "two")
    low, high = ordered(one, two)
    b.replica.apply([low])
    c.replica.apply([high])
    with caplog.at_level(logging.WARNING, logger="wifisync.sync.replica"):
        sync_clean(b, c)
    converged(b, c)
    assert sorted(titles(c).values()) == ["one" if low is one else "two"]
    assert [r.id for r in c.store.heads(low.header.item)] == [low.id]
    assert c.store.heads(high.header.item) == []
    assert [r.id for r in c.store.twin_records()] == [high.id]
    warnings = [m for m in caplog.messages if "equivocation" in m]
    assert len(warnings) == 2 and all(a.id.hex()[:16] in m for m in warnings)  # one each


def test_an_honest_edit_on_the_losing_twin_is_kept() -> None:
    a, b, c = household(3)
    item_x, item_y, low, high = twins_where_y_loses(a)
    b.replica.apply([low])
    c.replica.apply([high])
    c.vault.edit(item_y, fields={"pin": "c's edit"})  # it claims a's version at that seq
    [edit] = c.store.heads(item_y)
    assert edit.header.versions[a.id] == high.header.seq
    sync_clean(b, c)
    converged(b, c)
    for d in (b, c):
        assert not d.store.is_inactive(edit.id)
        assert d.vault.get(item_y).state.values["pin"] == "c's edit"
        assert d.vault.get(item_x).state.title == "x"


def test_a_claim_of_the_losing_twin_counts_once_that_twin_is_held_aside() -> None:
    a, b, c = household(3)
    sync_clean(b, c)  # b learns of c
    item_x, item_y, low, high = twins_where_y_loses(a)
    b.replica.apply([low])
    c.replica.apply([high])
    c.vault.edit(item_y, fields={"pin": "edit"})
    [edit] = c.store.heads(item_y)
    assert b.replica.apply([edit]).applied == [edit]  # stored; its claim is not held yet
    assert b.store.is_inactive(edit.id)
    b.replica.apply([high])  # kept aside, and it is what the edit claims
    assert not b.store.is_inactive(edit.id)
    assert b.vault.get(item_y).state.values["pin"] == "edit"
    assert [r.id for r in b.store.heads(item_x)] == [low.id]


def test_twins_in_one_batch_and_a_third_twin_settle_on_the_lowest() -> None:
    a, b, c, d = household(4)
    item = crypto.random_bytes(16)
    twins = [sealed(a, item, f"v{n}") for n in range(3)]
    low = ordered(*twins)[0]
    b.replica.apply(twins)  # all three in one batch
    c.replica.apply(list(reversed(twins[1:])))
    c.replica.apply(twins[:1])
    d.replica.apply([ordered(*twins)[2]])
    for one, other in ((b, c), (c, d), (b, d)):
        sync_clean(one, other)
    converged(b, c, d)
    assert [r.id for r in d.store.heads(item)] == [low.id]
    assert len(d.store.twin_records()) == 2
    assert d.vault.get(item).state.title == f"v{twins.index(low)}"


def test_vault_key_twins_converge() -> None:
    a, b, c = household(3)
    wrapped = [craft(a, VAULT_KEY_ITEM, Kind.VAULT_KEY, body=WrappedVaultKey(
        crypto.KdfParams.fresh(opslimit=1, memlimit=8192), crypto.random_bytes(72)).encode(),
        versions={}) for _ in range(2)]
    b.replica.apply(wrapped[:1])
    c.replica.apply(wrapped[1:])
    sync_clean(b, c)
    converged(b, c)
    assert ordered(*wrapped)[0].id in {r.id for r in b.store.heads(VAULT_KEY_ITEM)}


def admission(by: Device, who: int) -> Record:
    """A MEMBER record ``by`` signs admitting the ``who``-th test identity (not stored)."""
    ident = identity(who)
    return craft(by, member_item_id(ident.device_id), Kind.MEMBER,
                 body=Membership(ident.cert_der, f"d{who}").encode(), versions={})


def test_membership_twins_admit_both_everywhere() -> None:
    a, b, c = household(3)
    admits_e, admits_f = admission(a, 4), admission(a, 5)
    assert admits_e.header.seq == admits_f.header.seq
    b.replica.apply([admits_e])
    c.replica.apply([admits_f])
    e_id, f_id = identity(4).device_id, identity(5).device_id
    assert e_id in b.replica.named_devices() and f_id not in b.replica.named_devices()
    # e works at b before anyone learns of the equivocation
    e = join_device(b, "e", identity(4))
    e.vault.add("e's item")
    sync_clean(e, b)
    sync_clean(b, c)
    converged(b, c)
    for d in (b, c):
        named = d.replica.named_devices()
        assert named[e_id].current and named[f_id].current
        assert "e's item" in titles(d).values()
    assert {r.id for r in b.store.twin_records(Kind.MEMBER)} == {ordered(admits_e,
                                                                         admits_f)[1].id}


def test_an_item_twin_of_a_membership_record_keeps_the_membership() -> None:
    a, b, c = household(3)
    admits_e = admission(a, 4)
    junk = craft(a, crypto.random_bytes(16))
    assert junk.header.seq == admits_e.header.seq
    b.replica.apply([admits_e])
    c.replica.apply([junk])
    sync_clean(b, c)
    converged(b, c)
    assert identity(4).device_id in c.replica.named_devices()


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_twins_and_their_effects_survive_a_restart(tmp_path: Path, kind: str) -> None:
    paths = iter(tmp_path / f"{n}.db" for n in range(10))

    def factory() -> RecordStore:
        return SqliteStore(next(paths)) if kind == "sqlite" else MemoryStore()

    a, b, c = household(3, store_factory=factory)
    sync_clean(b, c)
    item = crypto.random_bytes(16)
    one, two = sealed(a, item, "one"), sealed(a, item, "two")
    low, high = ordered(one, two)
    b.replica.apply([low])
    c.replica.apply([high])
    c.replica.apply([low])  # c holds the higher one: the lower replaces it
    b.replica.apply([high])  # b holds the lower one: the higher goes aside
    for d in (b, c):  # a restart: the store reopened (SQLite), a new replica, no cached view
        if isinstance(d.store, SqliteStore):
            path = d.store.path
            d.store.close()
            d.store = SqliteStore(path)
        _views.pop(d.store, None)
    converged(b, c)
    assert c.vault.get(item).state.title == ("one" if low is one else "two")
    wire = sync(b, c)
    assert wire.sessions[0].stats.rounds == 0  # equal fingerprints at once


def test_a_claim_waits_alike_whichever_order_the_other_items_twin_arrives_in() -> None:
    a, b, c, d = household(4)
    for one, other in ((b, c), (c, d), (b, d)):
        sync_clean(one, other)  # everyone knows everyone
    item_x, item_y = crypto.random_bytes(16), crypto.random_bytes(16)
    twin_x, twin_y = sealed(a, item_x, "x"), sealed(a, item_y, "y")
    c.replica.apply([twin_y])
    c.vault.edit(item_y, fields={"pin": "edit"})
    [edit] = c.store.heads(item_y)
    b.replica.apply([twin_x])
    b.replica.apply([edit])
    d.replica.apply([edit])
    d.replica.apply([twin_x])
    assert b.store.is_inactive(edit.id) == d.store.is_inactive(edit.id)
    for one, other in ((b, c), (c, d), (b, d)):
        sync_clean(one, other)
    converged(b, c, d)
    assert not d.store.is_inactive(edit.id)
    assert d.vault.get(item_y).state.values["pin"] == "edit"
