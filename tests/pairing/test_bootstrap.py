"""The hand-over at pairing: what a member offers, and what the joiner makes of it."""

from __future__ import annotations

from tests.sync.helpers import Device, household, identity, join_device, sync
from wifisync.model.clock import hlc_pack
from wifisync.model.membership import compute, member_records
from wifisync.model.records import (
    Kind,
    Membership,
    Record,
    RecordHeader,
    member_item_id,
    sign_record,
)
from wifisync.pairing.bootstrap import check_offer, vault_offer
from wifisync.pairing.messages import MAX_OFFER_RECORDS
from wifisync.vault.members import revoke
from wifisync.wallclock import wall_ms


def rename_many(member: Device, device: Device, times: int) -> None:
    """``member`` rewrites ``device``'s MEMBER record ``times`` times (as renames would)."""
    me, item = member.identity, member_item_id(device.id)
    seq = member.store.next_seq(me.device_id)
    records: list[Record] = []
    for n in range(times):
        header = RecordHeader(member.replica.vault_id, item, Kind.MEMBER, me.device_id,
                              seq + n, {me.device_id: seq + n}, hlc_pack(1, n))
        records.append(sign_record(me, header,
                                   Membership(device.identity.cert_der, f"name {n}").encode()))
    member.store.append_many(records)


def test_an_offer_scales_past_4096_member_records() -> None:
    a, b, c = household(3)
    rename_many(a, b, MAX_OFFER_RECORDS + 200)
    sync(a, c)
    revoke(c.vault.author, c.replica.named_devices()[b.id])
    sync(c, a)
    assert len(member_records(a.store)) > MAX_OFFER_RECORDS
    newcomer = identity(6)
    a.vault.write_member(Membership(newcomer.cert_der, "newcomer"))
    offer = vault_offer(a.store, a.replica.vault_id)
    assert len(offer.records) < 20
    checked = check_offer(offer, newcomer, wall_ms)
    full = compute(a.replica.vault_id, member_records(a.store))
    assert {d: (m.current, m.cut, m.role) for d, m in checked.members.items()} == \
        {d: (m.current, m.cut, m.role) for d, m in full.current().items()}
    assert b.id not in checked.members  # the revocation came along


def test_a_joiner_made_of_the_offer_syncs_the_rest() -> None:
    a, b = household(2)
    rename_many(a, b, 50)
    d = join_device(a, "d", identity(7))  # helpers hand over everything: same result
    sync(a, d)
    assert d.replica.named_devices()[b.id].current
