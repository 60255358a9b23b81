"""What the replica accepts: members' validly signed records of our vault, nothing else."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path

import pytest
from msgspec.structs import replace

from tests.sync.helpers import (
    Device,
    household,
    identity,
    join_device,
    pairing_records,
    replica_on,
    sync,
)
from tests.sync.test_session import add_items
from wifisync.model import membership
from wifisync.model.membership import MembershipMemo, MembershipView
from wifisync.model.records import Kind, Membership, Record, RecordHeader, sign_record
from wifisync.model.verifier import InlineVerifier
from wifisync.store import MemoryStore, SqliteStore
from wifisync.sync import replica as replica_module
from wifisync.sync.replica import Replica
from wifisync.wallclock import wall_ms


def stranger_record(device: Device, seq: int = 1) -> Record:
    """A well-formed record of our vault signed by a device that is not a member."""
    outsider = identity(9)
    header = RecordHeader(vault=device.store.get_meta("vault_id") or b"", item=bytes(16),
                          kind=Kind.ITEM, author=outsider.device_id, seq=seq,
                          versions={outsider.device_id: seq}, time=1)
    return sign_record(outsider, header, b"ciphertext")


def test_unknown_author_is_refused_and_counted() -> None:
    _a, b = household(2)
    result = b.replica.apply([stranger_record(b)])
    assert result.refused == 1
    assert result.applied == []
    assert b.store.count_records() == 2 + 1  # genesis, vault key, b's membership


def test_bad_signature_is_refused_and_counted() -> None:
    a, b = household(2)
    good = a.store.heads(add_items(a, 1)[0])[0]
    forged = Record.create(good.header, good.body + b"!", good.signature)
    result = b.replica.apply([forged])
    assert (result.refused, result.applied) == (1, [])
    assert not b.store.has_record(forged.id)
    assert b.replica.apply([good]).applied == [good]


def test_record_of_another_vault_is_refused() -> None:
    a, b = household(2)
    good = a.store.heads(add_items(a, 1)[0])[0]
    header = replace(good.header, vault=bytes(16))
    other = sign_record(a.identity, header, good.body)
    assert b.replica.apply([other]).refused == 1


def test_member_record_with_a_bad_body_is_refused() -> None:
    a, b = household(2)
    me = a.identity
    seq = a.store.next_seq(me.device_id)
    header = RecordHeader(vault=a.replica.vault_id, item=bytes(16), kind=Kind.MEMBER,
                          author=me.device_id, seq=seq, versions={me.device_id: seq}, time=1)
    junk = sign_record(me, header, b"not a membership")
    assert b.replica.apply([junk]).refused == 1


def test_items_and_their_authors_membership_in_one_batch_any_order() -> None:
    a, b = household(2)
    d = join_device(a, "d", identity(3))
    add_items(d, 2)
    news = sorted(a.record_ids() - b.record_ids()) + sorted(d.record_ids() - b.record_ids())
    records = [r for rid in news if (r := a.store.get_record(rid) or d.store.get_record(rid))]
    items_first = sorted(records, key=lambda r: r.header.kind == Kind.MEMBER)
    result = b.replica.apply(items_first)
    assert result.refused == 0
    assert result.membership_changed
    assert d.id in b.replica.named_devices()


def test_the_same_origin_and_seq_twice_is_settled_not_fatal() -> None:
    a, b = household(2)
    first = a.store.heads(add_items(a, 1)[0])[0]
    twin = sign_record(a.identity, replace(first.header, time=first.header.time + 1), first.body)
    assert b.replica.apply([first]).applied == [first]
    stranger = stranger_record(b)
    result = b.replica.apply([twin, stranger])
    assert result.refused == 1 and result.applied == [twin]  # the stranger alone refused
    low = min(first, twin, key=lambda r: r.id)
    assert b.store.heads(first.header.item) == [low]
    assert b.store.has_record(twin.id) and not b.store.has_record(stranger.id)


def revoke(revoker: Device, device: Device) -> int:
    """``revoker`` revokes ``device``, stating what it holds; returns what it held of it."""
    from wifisync.vault.members import revoke as write_revocation

    target = revoker.replica.named_devices()[device.id]
    return write_revocation(revoker.vault.author, target).last_seq


def acknowledge(device: Device) -> list[Record]:
    """What a member's daemon does on learning of a revocation."""
    from wifisync.vault.members import acknowledge as write_acknowledgement

    return write_acknowledgement(device.vault.author)


def test_a_revocation_by_a_device_that_is_behind_deletes_nothing_and_loses_nothing() -> None:
    a, b, c = household(3)
    sync(a, c)
    early = add_items(c, 3, prefix="early")
    sync(c, a)
    sync(c, b)
    late = add_items(c, 2, prefix="late")
    sync(c, b)  # b holds c's late records; a never sees them before the revocation
    point = revoke(a, c)
    assert point == a.store.max_seq(c.id)
    wire = sync(a, b)
    assert c.id in {d for out in wire.outputs[1] for d in out.revoked}
    late_ids = {r.id for item in late for r in c.store.versions(item)}
    early_ids = {r.id for item in early for r in c.store.versions(item)}
    # Nothing is deleted: b keeps c's late records, inactive until a member vouches for them.
    assert late_ids <= b.record_ids() and early_ids <= a.record_ids()
    assert not any(b.store.heads(item) for item in late)
    assert all(b.store.heads(item) for item in early)
    # b held them before it learned of the revocation: it says so, and they count again.
    assert acknowledge(b) and not acknowledge(b)
    sync(a, b)
    assert a.state() == b.state()
    for device in (a, b):
        assert all(device.store.heads(item) for item in early + late)
        assert device.replica.named_devices()[c.id].cut == c.store.max_seq(c.id)
    # What c writes after that is stored (it syncs like anything else) but never counts.
    later = add_items(c, 1, prefix="later")
    wire = sync(c, b)
    assert wire.refused(1) == 0
    assert not b.store.heads(later[0]) and b.store.count_inactive() == 1


def test_bootstrap_accepts_the_self_signed_founder_but_no_items() -> None:
    (a,) = household(1)
    item_record = a.store.heads(add_items(a, 1)[0])[0]
    store = MemoryStore()
    vault_id = a.replica.vault_id
    store.set_meta("vault_id", vault_id)
    handed = [r for _i, held in a.store.heads_of_kind(Kind.MEMBER) for r in held]
    handed += a.store.heads_of_kind(Kind.VAULT_KEY).__next__()[1]
    result = replica_on(store, vault_id, identity(5).device_id).bootstrap([*handed, item_record])
    assert result.refused == 1
    assert a.id in replica_on(store, vault_id, identity(5).device_id).named_devices()
    assert not store.has_record(item_record.id)


def test_membership_is_computed_once_for_a_batch_that_changes_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = household(2)
    a.vault.write_member(Membership(identity(5).cert_der, "new"))
    batch = [r for r in pairing_records(a.store) if not b.store.has_record(r.id)]
    assert [r.header.kind for r in batch] == [Kind.MEMBER]
    calls: list[int] = []
    compute = membership.compute

    def counted(vault_id: bytes, records: Iterable[Record],
                memo: MembershipMemo | None = None) -> MembershipView:
        calls.append(1)
        return compute(vault_id, records, memo)

    monkeypatch.setattr(membership, "compute", counted)
    monkeypatch.setattr(replica_module, "compute", counted)
    result = b.replica.apply(batch)
    assert result.membership_changed and not result.refused
    assert identity(5).device_id in membership.current_members(b.store)  # what a daemon reads next
    assert len(calls) == 1


def test_a_replica_made_not_durable_commits_without_waiting_for_the_disk(
        tmp_path: Path) -> None:
    a, b = household(2, store_factory=lambda: SqliteStore(tmp_path / f"{uuid.uuid4()}.db"))
    add_items(a, 2)
    records = [r for r in a.store.records_after(a.id, 0, 100) if not b.store.has_record(r.id)]
    seen: list[int] = []

    def note(_stored: object) -> None:  # runs inside the commit's transaction
        seen.append(int(b.store._db.execute("PRAGMA synchronous").fetchone()[0]))

    assert isinstance(b.store, SqliteStore)
    durable = Replica(b.store, a.vault.vault_id, b.id, verifier=InlineVerifier(),
                      now_ms=wall_ms, on_stored=note)
    relaxed = Replica(b.store, a.vault.vault_id, b.id, verifier=InlineVerifier(),
                      now_ms=wall_ms, on_stored=note, durable=False)
    assert len(relaxed.apply(records[:1]).applied) == 1
    assert len(durable.apply(records[1:]).applied) == len(records) - 1
    assert seen == [1, 2]  # NORMAL (no fsync at COMMIT), then FULL
