"""Twins (two records with one origin and seq): the lower ID holds the place on every store."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.store.builders import make_record
from tests.store.test_append_many import ITEMS, random_history
from wifisync.errors import IntegrityError
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Kind, Record
from wifisync.store import AppendResult, MemoryStore, RecordStore, SqliteStore
from wifisync.store.base import EMPTY_FINGERPRINT, fingerprint_add


def deliver(store: RecordStore, records: list[Record]) -> list[AppendResult]:
    """What the replica does: the batch at once, else one by one, twins by their rule."""
    try:
        return store.append_many(records)
    except IntegrityError:
        out = []
        for r in records:
            try:
                out.append(store.append_many([r])[0])
            except IntegrityError:
                out.append(store.append_twin(r))
        return out


def state(store: RecordStore) -> tuple[object, ...]:
    """Everything a store exposes about its records, twins aside included."""
    heads = {item: [r.id for r in store.heads(item)] for item in ITEMS}
    logs = {item: sorted(r.id for r in store.versions(item)) for item in ITEMS}
    return (store.fingerprint(), store.seen(), list(store.record_ids()),
            list(store.synced_ids()), [r.id for r in store.twin_records()], heads, logs,
            store.origins(), store.count_records(), [r.id for r in store.inactive_records()])


def with_twins(devices: list[DeviceIdentity], rng: random.Random) -> tuple[list[Record],
                                                                          list[Record]]:
    """A random history, plus twins of some of its records (same place, another item or
    body, the same or a larger vector) and twins of those: returns (history, twins)."""
    history = random_history(devices, rng, 30)
    twins: list[Record] = []
    for r in rng.sample(history, 4):
        h = r.header
        for k in range(rng.randrange(1, 3)):  # one or two more records at its place
            author = next(d for d in devices if d.device_id == h.author)
            others = {d: n for d, n in h.versions.items() if d != h.author}
            if rng.random() < 0.5:
                others[devices[0].device_id] = others.get(devices[0].device_id, 0) + 1
            twins.append(make_record(author, h.seq, rng.choice(ITEMS), others,
                                     body=b"twin %d" % k))
    return history, twins


@pytest.mark.parametrize("seed", range(6))
def test_every_order_of_delivery_holds_the_lowest_twin(
        seed: int, tmp_path: Path, devices: list[DeviceIdentity]) -> None:
    rng = random.Random(seed)
    history, twins = with_twins(devices, rng)
    everything = history + twins
    results = []
    for n in range(4):
        delivery = everything[:]
        rng.shuffle(delivery)
        store: RecordStore = MemoryStore() if n % 2 else SqliteStore(tmp_path / f"{n}.db")
        cut = rng.randrange(1, len(delivery))
        deliver(store, delivery[:cut])
        deliver(store, delivery[cut:])
        assert deliver(store, rng.sample(everything, 5)) == [AppendResult.DUPLICATE] * 5
        results.append(state(store))
        store.close()
    assert all(r == results[0] for r in results[1:])
    # ... and it is the state of a store that only ever received the lowest twins
    lowest: dict[tuple[bytes, int], Record] = {}
    for r in everything:
        place = (r.header.author, r.header.seq)
        if place not in lowest or r.id < lowest[place].id:
            lowest[place] = r
    plain = MemoryStore()
    plain.append_many([r for r in everything if lowest[(r.header.author, r.header.seq)] is r])
    _fingerprint, *rest = state(plain)
    aside = [r.id for r in everything if lowest[(r.header.author, r.header.seq)] is not r]
    assert results[0][0] == fingerprint_add(EMPTY_FINGERPRINT, [r.id for r in everything])
    assert results[0][4] == sorted(aside)
    assert results[0][5:] == tuple(rest[4:]) and results[0][1:3] == tuple(rest[:2])


def ordered_twins(author: DeviceIdentity, seq: int, low_item: bytes, high_item: bytes,
                  high_versions: dict[bytes, int] | None = None) -> tuple[Record, Record]:
    """Two records at one place: the lower ID about ``low_item``, the higher ``high_item``."""
    for n in range(1000):
        low = make_record(author, seq, low_item, body=b"low %d" % n)
        high = make_record(author, seq, high_item, high_versions, body=b"high %d" % n)
        if low.id < high.id:
            return low, high
    raise AssertionError("unreachable")


def by_id(*records: Record) -> list[Record]:
    """Twins lowest ID first: the first holds the place."""
    return sorted(records, key=lambda r: r.id)


def test_the_lower_twin_takes_the_place_and_what_the_other_hid_comes_back(
        store: RecordStore, devices: list[DeviceIdentity]) -> None:
    a, b = devices[0], devices[1]
    first = make_record(b, 1, ITEMS[0])
    low, high = ordered_twins(a, 1, ITEMS[1], ITEMS[0], {b.device_id: 1})
    store.append(first)
    assert store.append(high) is AppendResult.HEAD
    assert [r.id for r in store.heads(ITEMS[0])] == [high.id]  # it superseded b's version
    assert store.append_twin(low) is AppendResult.HEAD
    assert [r.id for r in store.heads(ITEMS[0])] == [first.id]
    assert [r.id for r in store.heads(ITEMS[1])] == [low.id]
    assert store.versions(ITEMS[0]) == [first] and store.versions(ITEMS[1]) == [low]
    assert store.get_record(high.id) == high and store.has_record(high.id)
    assert [r.id for r in store.twin_records()] == [high.id]
    assert store.records_after(a.device_id, 0, 10) == [low]
    assert store.append_twin(high) is AppendResult.DUPLICATE
    assert store.fingerprint() == fingerprint_add(EMPTY_FINGERPRINT, [first.id, low.id, high.id])


def test_a_higher_twin_is_kept_aside_and_changes_nothing_else(
        store: RecordStore, devices: list[DeviceIdentity]) -> None:
    a = devices[0]
    low, high = by_id(make_record(a, 1, body=b"1"), make_record(a, 1, body=b"2"))
    store.append(low)
    before = (store.seen(), [r.id for r in store.heads(low.header.item)], store.count_records())
    assert store.append_twin(high) is AppendResult.TWIN
    assert (store.seen(), [r.id for r in store.heads(low.header.item)],
            store.count_records()) == before
    assert list(store.record_ids()) == [low.id]
    assert list(store.synced_ids()) == [low.id, high.id]
    assert store.twins_at(a.device_id, 1) == [high] and store.twins_at(a.device_id, 2) == []
    assert store.fingerprint() == fingerprint_add(EMPTY_FINGERPRINT, [low.id, high.id])


def test_a_replaced_twin_leaves_every_index(tmp_path: Path,
                                            devices: list[DeviceIdentity]) -> None:
    a, b = devices[0], devices[1]
    path = tmp_path / "vault.db"
    store = SqliteStore(path)
    low, high = by_id(make_record(a, 1, body=b"1"), make_record(a, 1, body=b"2", deleted=True))
    other = make_record(b, 1, ITEMS[2])
    store.append_many([high, other], inactive={high.id})
    store.add_signature_marks({high.id: b"m" * 16})
    assert store.add_signature_set([high.id, other.id], b"s" * 16)
    store.add_title_tags({high.id: b"t" * 16})
    assert store.append_twin(low) is AppendResult.HEAD
    store.close()
    store = SqliteStore(path)  # a restart keeps the twin aside and the lower one held
    assert store.signature_marks([high.id]) == {}
    assert store.signature_sets([other.id]) == []
    assert not store.is_inactive(high.id) and store.count_inactive() == 0
    tags = [row for batch in store.stream_title_tags() for row in batch]
    assert high.id not in [rid for _i, rid, _t, _r in tags]
    assert [r.id for r in store.twin_records()] == [high.id]
    assert [r.id for r in store.heads(low.header.item)] == [low.id]
    assert store.count_live_items() == 1 + (not low.header.deleted)
    store.close()


def test_a_failed_transaction_undoes_a_replacement(
        store: RecordStore, devices: list[DeviceIdentity]) -> None:
    a = devices[0]
    low, high = by_id(make_record(a, 1, body=b"1"), make_record(a, 1, body=b"2"))
    store.append(high)
    before = state(store)
    with pytest.raises(RuntimeError), store.transaction():
        store.append_twin(low)
        raise RuntimeError("power cut")
    assert state(store) == before


def test_a_member_twin_changes_the_membership_token(
        store: RecordStore, devices: list[DeviceIdentity]) -> None:
    a = devices[0]
    low, high = by_id(make_record(a, 1, kind=Kind.MEMBER, body=b"1"),
                      make_record(a, 1, body=b"2"))
    store.append(high)
    token = store.membership_token()
    store.append_twin(low)
    assert store.membership_token() != token
    assert store.twin_records(high.header.kind) == [high]
    assert store.twin_records(low.header.kind) == []
