"""The accept rule against the attacks of issue 11, each through the real replica and vault."""

from __future__ import annotations

import pytest

from tests.sync.helpers import (
    FAST_KDF,
    PASSWORD,
    Device,
    craft,
    household,
    identity,
    join_device,
    replica_on,
    sync,
)
from wifisync.errors import IntegrityError, UsageError, WrongPasswordError
from wifisync.model import crypto
from wifisync.model.clock import hlc_pack, hlc_wall_ms
from wifisync.model.records import (
    VAULT_KEY_ITEM,
    Kind,
    Membership,
    Record,
    RecordHeader,
    WrappedVaultKey,
    member_item_id,
    payload_key,
    seal_item_body,
    sign_records,
)
from wifisync.store import MemoryStore
from wifisync.sync.acceptance import MAX_FUTURE_MS, MAX_WAITING, Acceptance
from wifisync.transfer.backup import make_backup, restore_backup
from wifisync.vault.members import revoke
from wifisync.vault.unlocked import META_VAULT_ID, Vault, read_wrapped_key
from wifisync.wallclock import wall_ms

INFLATED = 2**63 - 1


def inflated_vector(device: Device, *others: Device) -> dict[bytes, int]:
    return {d.id: INFLATED for d in others}


def test_an_inflated_vector_never_hides_honest_edits() -> None:
    a, b = household(2)
    item = a.vault.add("Bank", fields={"pin": "1111"})
    sync(a, b)
    lie = craft(b, item, body=b"x", versions=inflated_vector(b, a))
    result = a.replica.apply([lie])
    assert result.refused == 0 and a.store.is_inactive(lie.id)  # held, synced, not counted
    a.vault.edit(item, fields={"pin": "2222"})  # Author.write checks it became current
    assert a.vault.get(item).state.values["pin"] == "2222"
    sync(a, b)
    assert b.vault.get(item).state.values["pin"] == "2222"
    assert a.store.is_inactive(lie.id) and b.store.is_inactive(lie.id)


def test_a_claim_that_runs_ahead_waits_for_what_it_claims() -> None:
    a, b, c = household(3)
    item = a.vault.add("Bank")
    sync(a, b)
    b.vault.edit(item, fields={"pin": "from b"})
    [edit] = b.store.heads(item)
    c.replica.apply([edit])  # it claims a's version, which c does not hold yet
    assert c.store.has_record(edit.id) and c.store.is_inactive(edit.id)
    sync(a, c)  # a's version arrives: the edit counts now
    assert not c.store.is_inactive(edit.id)
    assert c.vault.get(item).state.values["pin"] == "from b"


def test_waiting_records_are_bounded() -> None:
    a, b = household(2)
    store = b.store
    with store.transaction():
        batch = []
        for n in range(MAX_WAITING + 3):
            batch.append(craft(a, crypto.random_bytes(16), versions={b.id: 10**9 + n}))
            a.store.append(batch[-1], active=False)  # only to advance a's sequence numbers
    result = b.replica.apply(batch)
    assert result.refused == 3 and store.count_inactive() == MAX_WAITING


def test_a_relay_cannot_inflate_the_vault_key_or_passwd_away() -> None:
    a, b = household(2)
    nas = join_device(a, "nas", identity(5), role="relay")
    sync(a, nas)
    wrapped = read_wrapped_key(a.store)
    junk_key = craft(nas, VAULT_KEY_ITEM, Kind.VAULT_KEY,
                     WrappedVaultKey(wrapped.kdf, bytes(72)).encode(),
                     versions=inflated_vector(nas, a, b), time=hlc_pack(wall_ms(), 0))
    assert a.replica.apply([junk_key]).refused == 0
    assert a.store.is_inactive(junk_key.id)
    a.vault.change_password("new password", FAST_KDF)
    sync(a, b)
    for d in (a, b):
        assert Vault.unlock(d.store, d.identity, "new password").vault_key == a.vault_key
        with pytest.raises(WrongPasswordError):
            Vault.unlock(d.store, d.identity, PASSWORD)


def test_a_relay_deletes_nothing_and_writes_no_item_until_granted() -> None:
    a, b = household(2)
    nas = join_device(a, "nas", identity(5), role="relay")
    item = a.vault.add("Bank")
    sync(a, nas)
    tombstone = craft(nas, item, deleted=True, body=b"")
    assert a.replica.apply([tombstone]).refused == 0
    assert a.store.is_inactive(tombstone.id)
    assert a.vault.get(item).state.title == "Bank"
    with pytest.raises(UsageError, match="relay"):
        nas.vault.delete(item)
    # A member holding the key grants the role: the relay's tombstone counts from then on.
    a.vault.write_member(Membership(nas.identity.cert_der, "nas", role="member"))
    assert not a.store.is_inactive(tombstone.id)
    assert not any(not r.header.deleted for r in a.store.heads(item))
    sync(a, b)
    assert b.store.heads(item) == a.store.heads(item)


def test_a_retroactive_revocation_of_the_creator_has_no_effect() -> None:
    a, b = household(2)
    sync(a, b)
    creator = b.replica.named_devices()[a.id]
    attack = craft(b, member_item_id(a.id), Kind.MEMBER,
                   Membership(creator.cert_der, creator.name, revoked=True,
                              held={a.id: 0}).encode())
    for d in (a, b):
        d.replica.apply([attack])
        assert d.replica.named_devices()[a.id].current  # it disowns b's own admission: void
        assert Vault.unlock(d.store, d.identity, PASSWORD)


def test_revoking_the_creator_never_voids_the_genesis_records() -> None:
    a, b = household(2)
    item = a.vault.add("written by the creator before b knew")
    creator = b.replica.named_devices()[a.id]
    revoke(b.vault.author, creator)  # b is behind: it holds only a's first records
    sync(a, b)
    for d in (a, b):
        m = d.replica.named_devices()[a.id]
        assert m.revoked and m.cut is not None and m.cut >= 2
        assert Vault.unlock(d.store, d.identity, PASSWORD)  # genesis key record still counts
        assert b.id in d.replica.named_devices() and d.replica.named_devices()[b.id].current
    assert not b.store.heads(item)  # written after what b held of a: inactive, not deleted
    assert b.store.versions(item)


def test_mutual_revocation_ends_the_same_way_in_every_order() -> None:
    a, b, c, d = household(4)
    for x in (b, c, d):
        sync(a, x)
    revoke(b.vault.author, b.replica.named_devices()[c.id])
    revoke(c.vault.author, c.replica.named_devices()[b.id])
    outcomes = []
    for first, second in ((b, c), (c, b)):
        store = MemoryStore()
        store.set_meta(META_VAULT_ID, a.store.get_meta(META_VAULT_ID) or b"")
        replica = replica_on(store, a.replica.vault_id, d.id)
        for src in (a, first, second):
            replica.apply([r for rid in sorted(src.record_ids())
                           if (r := src.store.get_record(rid)) is not None])
        outcomes.append({k: (m.current, m.cut) for k, m in replica.named_devices().items()})
    assert outcomes[0] == outcomes[1]
    assert not outcomes[0][b.id][0] and not outcomes[0][c.id][0]  # both revoked
    assert outcomes[0][a.id][0] and outcomes[0][d.id][0]


def test_a_revocation_by_an_already_revoked_device_has_no_effect() -> None:
    a, b, c = household(3)
    for x in (b, c):
        sync(a, x)
    revoke(a.vault.author, a.replica.named_devices()[b.id])
    sync(a, b)  # b learns it was revoked, then tries to revoke c
    with pytest.raises(UsageError, match="revoked"):
        revoke(b.vault.author, b.replica.named_devices()[c.id])
    target = b.replica.named_devices()[c.id]
    late = craft(b, member_item_id(c.id), Kind.MEMBER,
                 Membership(target.cert_der, target.name, revoked=True,
                            held=b.store.origins()).encode())
    b.store.append(late)  # written by hand, past its own Author's refusal
    sync(b, c)
    sync(c, a)
    for d in (a, c):
        assert d.replica.named_devices()[c.id].current
        assert d.replica.named_devices()[b.id].revoked


def test_a_far_future_time_is_refused_alone_and_moves_no_clock() -> None:
    a, b = household(2)
    item = a.vault.add("Bank")
    sync(a, b)
    poisoned = craft(b, item, time=2**63 - 1)
    fine = b.store.heads(b.vault.add("fine"))[0]
    result = a.replica.apply([poisoned, fine])
    assert result.refused == 1 and a.store.has_record(fine.id)
    assert not a.store.has_record(poisoned.id)
    # A time just inside the bound is taken, but the next local write stays near our clock.
    ahead = b.vault
    ahead.author.now_ms = lambda: wall_ms() + MAX_FUTURE_MS - 60_000
    ahead.edit(item, fields={"pin": "0"})
    sync(b, a)
    a.vault.edit(item, fields={"pin": "1"})
    [mine] = a.store.heads(item)
    assert hlc_wall_ms(mine.header.time) <= wall_ms() + MAX_FUTURE_MS


def test_a_planted_far_future_cell_time_wins_no_longer_than_its_record() -> None:
    a, b = household(2)
    item = a.vault.add("Bank", fields={"pin": "honest"})
    sync(a, b)
    header_time = hlc_pack(wall_ms(), 0)
    planted = craft(b, item, time=header_time)
    payload = {"attrs": {"title": ["Bank", 1]}, "fields": {"pin": ["planted", 2**62]},
               "history": {}}
    body = seal_item_body(payload_key(b.vault_key), planted.header, payload)
    planted = craft(b, item, body=body, time=header_time)
    a.replica.apply([planted])
    assert a.vault.get(item).state.fields["pin"] == ("planted", header_time)
    a.vault.edit(item, fields={"pin": "later"})
    assert a.vault.get(item).state.values["pin"] == "later"


def test_one_junk_item_hides_only_itself_and_can_be_deleted() -> None:
    a, b = household(2)
    keep = a.vault.add("Keep")
    sync(a, b)
    junk = craft(b, crypto.random_bytes(16), body=crypto.random_bytes(80))
    a.replica.apply([junk])
    vault = a.vault
    assert [v.id for v in vault.items()] == [keep] and vault.unreadable == [junk.header.item]
    with pytest.raises(IntegrityError, match="failed"):
        vault.verify_all()
    vault.delete(junk.header.item)
    assert [v.id for v in vault.items()] == [keep] and vault.unreadable == []


def test_the_read_path_refuses_a_revoked_devices_later_record() -> None:
    a, b = household(2)
    item = a.vault.add("Bank")
    sync(a, b)
    revoke(a.vault.author, a.replica.named_devices()[b.id])
    stolen = craft(b, item, deleted=True, body=b"")
    a.store.append(stolen)  # written straight into the store, past the replica
    with pytest.raises(IntegrityError, match="not a member"):
        a.vault.get(item)
    with pytest.raises(IntegrityError, match="not a member"):
        a.vault.verify_all()


def test_restore_applies_the_rule_to_a_revoked_devices_later_records(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from wifisync.home import Home

    a, b = household(2)
    item = a.vault.add("Bank")
    sync(a, b)
    revoke(a.vault.author, a.replica.named_devices()[b.id])
    a.replica.apply([craft(b, item, deleted=True, body=b"")])  # held, inactive
    restored = restore_backup(make_backup(a.vault), Home.locate(str(tmp_path / "r")), PASSWORD)
    assert restored.items == 1


def equivocated_trees(a: Device) -> tuple[list[Record], list[Record]]:
    """Two trees by ``a`` (hostile) holding one header and body: two records with one seq."""
    vault_id = a.store.get_meta(META_VAULT_ID) or b""
    seq = a.store.next_seq(a.id)

    def parts(body: bytes, at: int) -> tuple[RecordHeader, bytes]:
        header = RecordHeader(vault_id, bytes([at]) * 16, Kind.ITEM, a.id, at, {a.id: at},
                              hlc_pack(wall_ms(), 0), False)
        return header, body

    twin = parts(b"the same", seq)
    tree1 = sign_records(a.identity, [twin, parts(b"x", seq + 1)])
    tree2 = sign_records(a.identity, [twin, parts(b"y", seq + 2)])
    assert tree1[0].id != tree2[0].id and tree1[0].header == tree2[0].header
    return tree1, tree2


def test_a_record_signed_in_two_trees_is_an_equivocation_settled_alone() -> None:
    a, b = household(2)
    tree1, tree2 = equivocated_trees(a)
    low, high = sorted([tree1[0], tree2[0]], key=lambda r: r.id)
    assert b.replica.apply(tree1).refused == 0
    result = b.replica.apply(tree2)
    assert result.refused == 0 and result.applied == tree2  # the twin and its tree sibling
    assert [r.id for r in b.store.twin_records()] == [high.id]  # the higher twin aside
    assert b.store.records_after(a.id, tree1[0].header.seq - 1, 1) == [low]
    assert b.store.has_record(tree1[1].id) and b.store.has_record(tree2[1].id)


def test_replicas_that_took_different_twins_converge() -> None:
    a, b, c = household(3)
    tree1, tree2 = equivocated_trees(a)
    b.replica.apply(tree1)
    c.replica.apply(tree2)
    wire = sync(b, c)
    assert b.record_ids() == c.record_ids()
    assert b.store.fingerprint() == c.store.fingerprint()
    assert not any(s.stats.fingerprint_mismatch for s in wire.sessions)
    for item in {r.header.item for r in tree1 + tree2}:
        assert b.store.heads(item) == c.store.heads(item)


def test_a_batch_is_judged_as_each_of_its_records_alone() -> None:
    """``refusals`` reads the clock once for a batch: the same answers as record by record."""
    a, b = household(2)
    [stranger] = household(1)
    batch = [craft(b, b.vault.add("Bank"), time=2**63 - 1),
             b.store.heads(b.vault.add("fine"))[0],
             craft(stranger, stranger.vault.add("elsewhere"))]
    accept = Acceptance(a.store, a.replica.vault_id, wall_ms)
    judged = accept.refusals(batch)
    alone = [accept.refusals([r])[0] for r in batch]
    assert judged == alone
    assert [reason for reason, _key in judged] == [
        "clock time too far ahead", None, "another vault"]
    assert [key for _reason, key in judged[:2]] == [b.identity.public_key] * 2
