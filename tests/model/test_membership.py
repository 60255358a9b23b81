"""The membership rule: a function of the MEMBER records alone, linear in them."""

from __future__ import annotations

import functools
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.sync.helpers import FAST_KDF, PASSWORD, household, sync
from wifisync.model.identity import DeviceIdentity
from wifisync.model.membership import compute, member_records
from wifisync.model.records import (
    Kind,
    Membership,
    Record,
    RecordHeader,
    member_item_id,
    sign_record,
)
from wifisync.store import MemoryStore
from wifisync.vault.members import acknowledge, revoke
from wifisync.vault.unlocked import META_VAULT_ID, Vault


@functools.cache
def scenario() -> tuple[bytes, list[Record]]:
    """Pairings by several members, a stale revocation, an acknowledgement, a mutual pair."""
    a, b, c, d, e = household(5)
    for x in (b, c, d, e):
        sync(a, x)
    for x in (c, d):
        sync(x, b)
    revoke(c.vault.author, c.replica.named_devices()[b.id])
    revoke(b.vault.author, b.replica.named_devices()[c.id])  # concurrent with c's
    revoke(e.vault.author, e.replica.named_devices()[d.id])
    sync(e, a)
    acknowledge(a.vault.author)
    records: dict[bytes, Record] = {}
    for x in (a, b, c, d, e):
        records.update((r.id, r) for r in member_records(x.store))
    return a.store.get_meta(META_VAULT_ID) or b"", list(records.values())


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_the_same_records_in_any_order_make_the_same_members(data: st.DataObject) -> None:
    vault_id, records = scenario()  # built once, inside a test (the KDF floor is patched)
    order = data.draw(st.permutations(range(len(records))), label="order")
    expected = compute(vault_id, records)
    got = compute(vault_id, [records[i] for i in order])
    assert got.members == expected.members and got.effective == expected.effective
    current = {m.name for m in got.current().values()}
    assert current == {"d0", "d4"}  # b and c revoked each other, e revoked d


def test_membership_of_a_thousand_member_records_is_linear() -> None:
    """600 member records took 14.4 s before (quadratic); bench/membership.py has figures."""
    store = MemoryStore()
    root = DeviceIdentity.generate()
    vault = Vault.create(store, root, "root", PASSWORD, FAST_KDF)
    devices = [DeviceIdentity.generate() for _ in range(100)]
    records = member_records(store)
    seq = store.next_seq(root.device_id)
    for version in range(10):
        for n, device in enumerate(devices):
            header = RecordHeader(vault.vault_id, member_item_id(device.device_id), Kind.MEMBER,
                                  root.device_id, seq, {root.device_id: seq}, seq)
            body = Membership(device.cert_der, f"device {n}.{version}").encode()
            records.append(sign_record(root, header, body))
            seq += 1
    assert len(records) == 1001
    start = time.perf_counter()
    view = compute(vault.vault_id, records)
    assert len(view.current()) == 101
    assert time.perf_counter() - start < 1.0
