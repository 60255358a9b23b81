"""The contract every record store keeps: the MVR rule, seen, fingerprint, atomic transactions."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.store.builders import MakeRecord, make_record
from wifisync.errors import IntegrityError
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Kind, Record
from wifisync.model.versions import dominates
from wifisync.store import AppendResult, MemoryStore, RecordStore, SqliteStore
from wifisync.store.base import EMPTY_FINGERPRINT, FINGERPRINT_MODULUS

X, Y, Z, M = b"X" * 16, b"Y" * 16, b"Z" * 16, b"M" * 16


def heads_ids(store: RecordStore, item: bytes) -> list[bytes]:
    return [r.id for r in store.heads(item)]


def state_of(store: RecordStore) -> tuple[object, ...]:
    """Everything a store exposes, for comparing two stores."""
    items = {
        kind: [(item, [r.id for r in held]) for item, held in store.heads_of_kind(kind)]
        for kind in Kind
    }
    return (items, store.seen(), store.fingerprint(), sorted(store.record_ids()),
            store.count_records(), [r.id for r in store.inactive_records()])


# --- single appends --------------------------------------------------------------------


def test_append_then_duplicate(store: RecordStore, devices: list[DeviceIdentity],
                               rec: MakeRecord) -> None:
    a = devices[0]
    r = rec(a, 1)
    assert not store.has_record(r.id)
    assert store.append(r) is AppendResult.HEAD
    assert store.append(r) is AppendResult.DUPLICATE
    assert store.count_records() == 1
    assert store.has_record(r.id) and store.has_seq(a.device_id, 1)
    assert not store.has_seq(a.device_id, 2)
    got = store.get_record(r.id)
    assert got is not None and got.encoded == r.encoded and got.header == r.header
    assert store.get_record(b"\x00" * 32) is None
    assert store.max_seq(a.device_id) == 1 and store.next_seq(a.device_id) == 2
    assert store.max_seq(devices[1].device_id) == 0


def test_dominated_version_is_dropped(store: RecordStore, devices: list[DeviceIdentity],
                                      rec: MakeRecord) -> None:
    a, b = devices[0], devices[1]
    r1 = rec(a, 1)
    r2 = rec(b, 1, versions={a.device_id: 1})
    store.append(r1)
    assert store.append(r2) is AppendResult.HEAD
    assert heads_ids(store, r1.header.item) == [r2.id]
    assert [r.id for r in store.versions(r1.header.item)] == [r1.id, r2.id]


def test_late_dominated_version_is_obsolete_but_kept_in_the_log(
        store: RecordStore, devices: list[DeviceIdentity], rec: MakeRecord) -> None:
    a, b = devices[0], devices[1]
    r1 = rec(a, 1)
    r2 = rec(b, 1, versions={a.device_id: 1})
    store.append(r2)
    assert store.append(r1) is AppendResult.OBSOLETE
    assert heads_ids(store, r1.header.item) == [r2.id]
    assert store.has_record(r1.id)
    assert store.seen() == {a.device_id: 1, b.device_id: 1}
    assert [r.id for r in store.versions(r1.header.item)] == [r2.id, r1.id]


def test_concurrent_versions_are_both_held(store: RecordStore, devices: list[DeviceIdentity],
                                           rec: MakeRecord) -> None:
    a, b = devices[0], devices[1]
    base = rec(a, 1)
    left = rec(a, 2)
    right = rec(b, 1, versions={a.device_id: 1})
    for r in (base, left, right):
        store.append(r)
    assert heads_ids(store, base.header.item) == sorted([left.id, right.id])
    merged = rec(b, 2, versions={a.device_id: 2})
    store.append(merged)
    assert heads_ids(store, base.header.item) == [merged.id]


def test_equal_version_vector_is_ignored(store: RecordStore, devices: list[DeviceIdentity],
                                         rec: MakeRecord) -> None:
    a, b = devices[0], devices[1]
    first = rec(a, 1, versions={b.device_id: 1})
    twin = rec(b, 1, versions={a.device_id: 1})  # equal vector, different record
    assert store.append(first) is AppendResult.HEAD
    assert store.append(twin) is AppendResult.OBSOLETE
    assert heads_ids(store, first.header.item) == [first.id]


def test_same_origin_and_seq_with_other_bytes_is_refused(
        store: RecordStore, devices: list[DeviceIdentity], rec: MakeRecord) -> None:
    a = devices[0]
    r = rec(a, 1, body=b"one")
    store.append(r)
    before = state_of(store)
    with pytest.raises(IntegrityError):
        store.append(rec(a, 1, body=b"two"))
    assert state_of(store) == before


def test_heads_of_kind_groups_items_by_kind(store: RecordStore, devices: list[DeviceIdentity],
                                            rec: MakeRecord) -> None:
    a, b = devices[0], devices[1]
    store.append(rec(a, 1, item=Y))
    store.append(rec(a, 2, item=X))
    store.append(rec(b, 1, item=X))
    store.append(rec(a, 3, item=M, kind=Kind.MEMBER))
    items = list(store.heads_of_kind(Kind.ITEM))
    assert [item for item, _ in items] == [X, Y]
    assert [len(held) for _, held in items] == [2, 1]
    assert [[r.id for r in held] for _, held in items] == [heads_ids(store, X),
                                                           heads_ids(store, Y)]
    assert [item for item, _ in store.heads_of_kind(Kind.MEMBER)] == [M]
    assert list(store.heads_of_kind(Kind.VAULT_KEY)) == []


def test_a_version_of_another_kind_hides_no_membership(
        store: RecordStore, devices: list[DeviceIdentity], rec: MakeRecord) -> None:
    a, b = devices[0], devices[1]
    member = rec(a, 1, item=M, kind=Kind.MEMBER)
    store.append(member)
    for seq in range(1, 9):  # concurrent item versions under the member item's ID
        store.append(rec(b, seq, item=M, versions={}, body=b"junk %d" % seq))
    assert [(item, [r.id for r in held]) for item, held in store.heads_of_kind(Kind.MEMBER)] \
        == [(M, [member.id])]


# --- seen and fingerprint --------------------------------------------------------------


def test_seen_waits_for_gaps_to_fill(store: RecordStore, devices: list[DeviceIdentity],
                                     rec: MakeRecord) -> None:
    a = devices[0]
    rs = [rec(a, n, item=bytes([n]) * 16) for n in range(1, 6)]
    store.append(rs[2])
    assert store.seen() == {}
    store.append(rs[0])
    assert store.seen() == {a.device_id: 1}
    store.append(rs[4])
    assert store.seen() == {a.device_id: 1}
    store.append(rs[1])
    assert store.seen() == {a.device_id: 3}
    assert store.max_seq(a.device_id) == 5
    store.append(rs[3])
    assert store.seen() == {a.device_id: 5}


def test_fingerprint_is_the_sum_of_record_ids(store: RecordStore,
                                              devices: list[DeviceIdentity],
                                              rec: MakeRecord) -> None:
    assert store.fingerprint() == EMPTY_FINGERPRINT
    rs = [rec(devices[0], n, item=bytes([n]) * 16) for n in range(1, 4)]
    for r in rs:
        store.append(r)
    total = sum(int.from_bytes(r.id, "big") for r in rs) % FINGERPRINT_MODULUS
    assert store.fingerprint() == total.to_bytes(32, "big")
    assert sorted(store.record_ids()) == sorted(r.id for r in rs)


# --- ranges ----------------------------------------------------------------------------


def test_records_after_is_ordered_and_limited(store: RecordStore,
                                              devices: list[DeviceIdentity],
                                              rec: MakeRecord) -> None:
    a, b = devices[0], devices[1]
    rs = [rec(a, n, item=bytes([n]) * 16) for n in range(1, 8)]
    for r in reversed(rs):
        store.append(r)
    store.append(rec(b, 1))
    assert [r.header.seq for r in store.records_after(a.device_id, 0, 100)] == list(range(1, 8))
    assert [r.header.seq for r in store.records_after(a.device_id, 2, 3)] == [3, 4, 5]
    assert store.records_after(a.device_id, 7, 10) == []
    assert [r.id for r in store.records_after(b.device_id, 0, 10)] == [rec(b, 1).id]
    assert store.records_after(devices[2].device_id, 0, 10) == []


def test_encoded_after_is_records_after_unparsed(store: RecordStore,
                                                 devices: list[DeviceIdentity],
                                                 rec: MakeRecord) -> None:
    a = devices[0]
    for n in (1, 2, 4, 6):
        store.append(rec(a, n, item=bytes([n]) * 16))
    for seq, limit, max_bytes in ((0, 100, None), (1, 2, None), (0, 100, 1), (6, 10, None)):
        assert store.encoded_after(a.device_id, seq, limit, max_bytes) == [
            (r.header.seq, r.id, r.encoded)
            for r in store.records_after(a.device_id, seq, limit, max_bytes)]
    assert [n for n, _id, _b in store.encoded_after(a.device_id, 1, 2)] == [2, 4]


def test_records_after_skips_gaps(store: RecordStore, devices: list[DeviceIdentity],
                                  rec: MakeRecord) -> None:
    a = devices[0]
    for n in (1, 4, 6):
        store.append(rec(a, n, item=bytes([n]) * 16))
    assert [r.header.seq for r in store.records_after(a.device_id, 1, 2)] == [4, 6]


# --- transactions ----------------------------------------------------------------------


def test_failed_transaction_leaves_nothing(store: RecordStore, devices: list[DeviceIdentity],
                                           rec: MakeRecord) -> None:
    a, b = devices[0], devices[1]
    store.append(rec(a, 1))
    store.set_meta("k", b"before")
    before = state_of(store)
    with pytest.raises(RuntimeError), store.transaction():
        store.append(rec(a, 2))
        store.append(rec(b, 1, item=Y))
        with store.transaction():  # a nested call joins the outer one
            store.append(rec(b, 2, item=Z, kind=Kind.MEMBER))
        store.set_meta("k", b"after")
        store.set_meta("new", b"x")
        raise RuntimeError("boom")
    assert state_of(store) == before
    assert store.get_meta("k") == b"before" and store.get_meta("new") is None
    assert not store.has_seq(a.device_id, 2)
    assert heads_ids(store, Y) == [] and store.versions(Y) == []
    assert store.max_seq(b.device_id) == 0
    # and the store still works afterwards
    assert store.append(rec(a, 2)) is AppendResult.HEAD


def test_failed_activity_change_is_rolled_back(store: RecordStore,
                                               devices: list[DeviceIdentity],
                                               rec: MakeRecord) -> None:
    a = devices[0]
    for n in range(1, 4):
        store.append(rec(a, n))
    before = state_of(store)
    with pytest.raises(RuntimeError), store.transaction():
        store.set_active(store.records_after(a.device_id, 1, 10), False)
        raise RuntimeError("boom")
    assert state_of(store) == before
    assert store.count_inactive() == 0
    assert [r.header.seq for r in store.versions(b"i" * 16)] == [1, 2, 3]


# --- inactive records (the accept rule's verdicts) ----------------------------------------


def test_inactive_records_leave_the_held_versions_and_come_back(
        store: RecordStore, devices: list[DeviceIdentity], rec: MakeRecord) -> None:
    a, b = devices[0], devices[1]
    kept = rec(b, 1)
    by_a1 = rec(a, 1, versions={b.device_id: 1})
    by_a2 = rec(a, 2, item=Y)
    by_a3 = rec(a, 3, versions={b.device_id: 1})
    for r in (kept, by_a1, by_a2, by_a3):
        store.append(r)
    assert heads_ids(store, kept.header.item) == [by_a3.id]
    fingerprint, seen = store.fingerprint(), store.seen()
    assert store.set_active([by_a2, by_a3], False) == 2
    assert heads_ids(store, kept.header.item) == [by_a1.id]
    assert heads_ids(store, Y) == []
    assert {r.id for r in store.inactive_records()} == {by_a2.id, by_a3.id}
    assert [r.id for r in store.inactive_records([Y])] == [by_a2.id]
    # Nothing is deleted: sync state and the log are unchanged.
    assert store.fingerprint() == fingerprint and store.seen() == seen
    assert store.has_record(by_a3.id) and store.count_records() == 4
    assert store.set_active([by_a2, by_a3], False) == 0
    assert store.set_active([by_a2, by_a3], True) == 2
    assert heads_ids(store, kept.header.item) == [by_a3.id]
    assert heads_ids(store, Y) == [by_a2.id] and store.count_inactive() == 0


def test_a_record_stored_inactive_takes_no_part_in_its_item(
        store: RecordStore, devices: list[DeviceIdentity], rec: MakeRecord) -> None:
    a, b = devices[0], devices[1]
    first = rec(b, 1)
    inflated = rec(a, 1, versions={b.device_id: 2**62})
    assert store.append(first) is AppendResult.HEAD
    assert store.append_many([inflated], inactive={inflated.id}) == [AppendResult.INACTIVE]
    assert heads_ids(store, first.header.item) == [first.id]
    assert store.is_inactive(inflated.id) and store.count_inactive() == 1
    assert store.append(inflated) is AppendResult.DUPLICATE
    store.set_active([inflated], True)
    assert heads_ids(store, first.header.item) == [inflated.id]


# --- signature marks -------------------------------------------------------------------


def test_signature_marks_are_kept_and_replaced(
        store: RecordStore, devices: list[DeviceIdentity], rec: MakeRecord) -> None:
    a = devices[0]
    first, second = rec(a, 1), rec(a, 2, item=Y)
    store.append(first)
    store.append(second)
    assert store.signature_marks([first.id, second.id]) == {}
    store.add_signature_marks({first.id: b"1" * 16, second.id: b"2" * 16})
    store.add_signature_marks({first.id: b"3" * 16})
    assert store.signature_marks([first.id, second.id, b"?" * 32]) == {
        first.id: b"3" * 16, second.id: b"2" * 16}
    many = [bytes([n % 256, n // 256]) * 16 for n in range(1200)]  # more than one IN list
    store.add_signature_marks({rid: rid[:16] for rid in many})
    assert store.signature_marks(many) == {rid: rid[:16] for rid in many}
    with pytest.raises(RuntimeError), store.transaction():
        store.add_signature_marks({second.id: b"4" * 16})
        raise RuntimeError("boom")
    assert store.signature_marks([second.id]) == {second.id: b"2" * 16}


def test_set_marks_cover_records_stored_together_and_roll_back(
        store: RecordStore, devices: list[DeviceIdentity], rec: MakeRecord) -> None:
    a = devices[0]
    first, second, third = rec(a, 1), rec(a, 2, item=Y), rec(a, 3, item=X)
    store.append_many([first, second])
    store.append(third)
    assert store.signature_sets([first.id]) == []
    assert store.add_signature_set([second.id, first.id], b"s" * 16)
    [(ids, mark)] = store.signature_sets([first.id, third.id])
    assert sorted(ids) == sorted([first.id, second.id]) and mark == b"s" * 16
    assert store.signature_sets([third.id]) == []
    many = [rec(a, 10 + n, item=bytes([n]) * 16) for n in range(100)]  # a list's worth
    store.append_many(many)
    assert store.add_signature_set([r.id for r in many], b"m" * 16)
    for asked in ([r.id for r in many], [many[50].id]):
        [(ids, mark)] = store.signature_sets(asked)
        assert sorted(ids) == sorted(r.id for r in many) and mark == b"m" * 16
    assert not store.add_signature_set([third.id, b"?" * 32], b"t" * 16)  # one not held
    with pytest.raises(RuntimeError), store.transaction():
        assert store.add_signature_set([third.id], b"t" * 16)
        raise RuntimeError("boom")
    assert store.signature_sets([third.id]) == []


# --- every order of arrival ------------------------------------------------------------


def scenario(devices: list[DeviceIdentity]) -> list[Record]:
    """Edits on three devices: dominated, concurrent, a tombstone and a member record."""
    a, b, c = devices
    A, B, C = a.device_id, b.device_id, c.device_id
    return [
        make_record(a, 1, X),
        make_record(b, 1, X, {A: 1}),
        make_record(a, 2, X),
        make_record(c, 1, Y),
        make_record(a, 3, Y, {C: 1}),
        make_record(b, 2, Y, {A: 1}),
        make_record(c, 2, X, {A: 2, B: 1}),
        make_record(b, 3, Z, deleted=True, body=b""),
        make_record(a, 4, M, kind=Kind.MEMBER),
        make_record(c, 3, Y, {A: 3}),  # dominates (a, 3) only: Y keeps two versions
    ]


def expected_heads(records: list[Record]) -> dict[bytes, list[bytes]]:
    """The maximal versions per item, by brute force."""
    out: dict[bytes, list[bytes]] = {}
    for r in records:
        rivals = [o for o in records if o.header.item == r.header.item and o.id != r.id]
        if not any(dominates(o.header.versions, r.header.versions) for o in rivals):
            out.setdefault(r.header.item, []).append(r.id)
    return {k: sorted(v) for k, v in out.items()}


def expected_seen(records: list[Record]) -> dict[bytes, int]:
    seqs: dict[bytes, set[int]] = {}
    for r in records:
        seqs.setdefault(r.header.author, set()).add(r.header.seq)
    out = {}
    for origin, have in seqs.items():
        n = 0
        while n + 1 in have:
            n += 1
        if n:
            out[origin] = n
    return out


@contextmanager
def fresh_store(kind: str) -> Iterator[RecordStore]:
    if kind == "memory":
        yield MemoryStore()
        return
    with tempfile.TemporaryDirectory() as d:
        s = SqliteStore(Path(d) / "vault.db")
        try:
            yield s
        finally:
            s.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_order_of_arrival_gives_the_same_state(
        kind: str, devices: list[DeviceIdentity], data: st.DataObject) -> None:
    records = scenario(devices)
    subset = data.draw(st.lists(st.sampled_from(records), unique_by=lambda r: r.id,
                                min_size=1), label="subset")
    dups = data.draw(st.lists(st.sampled_from(subset), max_size=3), label="duplicates")
    order = data.draw(st.permutations(subset + dups), label="order")
    with fresh_store(kind) as s:
        for r in order:
            s.append(r)
        assert {item: heads_ids(s, item) for item in {r.header.item for r in subset}} == \
            expected_heads(subset)
        assert s.seen() == expected_seen(subset)
        total = sum(int.from_bytes(r.id, "big") for r in subset) % FINGERPRINT_MODULUS
        assert s.fingerprint() == total.to_bytes(32, "big")
        assert s.count_records() == len(subset)


def test_both_stores_agree_on_the_full_scenario(devices: list[DeviceIdentity],
                                                tmp_path: Path) -> None:
    records = scenario(devices)
    mem, disk = MemoryStore(), SqliteStore(tmp_path / "v.db")
    for r in records:
        mem.append(r)
    for r in reversed(records):
        disk.append(r)
    assert state_of(mem) == state_of(disk)
    assert heads_ids(mem, Y) == sorted([records[-1].id, records[5].id])
    assert len(heads_ids(mem, X)) == 1
    disk.close()


def full_state(store: RecordStore, devices: list[DeviceIdentity]) -> tuple[object, ...]:
    """state_of plus the logs and per-origin counters."""
    logs = {item: [r.id for r in store.versions(item)] for item in (X, Y, Z, M)}
    tops = [store.max_seq(d.device_id) for d in devices]
    after = [[r.id for r in store.records_after(d.device_id, 0, 100)] for d in devices]
    return (state_of(store), logs, tops, after)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_failed_transaction_is_undone_completely(
        kind: str, devices: list[DeviceIdentity], data: st.DataObject) -> None:
    records = scenario(devices)
    order = data.draw(st.permutations(records), label="order")
    split = data.draw(st.integers(0, len(order)), label="committed")
    hide = data.draw(st.none() | st.tuples(st.sampled_from(devices), st.integers(0, 3)),
                     label="hide")
    with fresh_store(kind) as s:
        for r in order[:split]:
            s.append(r)
        before = full_state(s, devices)
        with pytest.raises(RuntimeError), s.transaction():
            for r in order[split:]:
                s.append(r)
            if hide is not None:
                s.set_active(s.records_after(hide[0].device_id, hide[1], 100), False)
            raise RuntimeError("abort")
        assert full_state(s, devices) == before
        for r in order[split:]:
            s.append(r)
        with fresh_store("memory") as reference:
            for r in records:
                reference.append(r)
            assert state_of(s) == state_of(reference)
