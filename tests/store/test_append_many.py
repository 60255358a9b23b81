"""The batched append equals appending one record at a time, on both stores."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.store.builders import make_record
from wifisync.errors import IntegrityError
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Kind, Record
from wifisync.store import MemoryStore, RecordStore, SqliteStore

ITEMS = [bytes([i]) * 16 for i in range(4)]


def random_history(devices: list[DeviceIdentity], rng: random.Random, n: int) -> list[Record]:
    """Records of several authors over a few items, each seeing a random earlier subset."""
    out: list[Record] = []
    seqs = {d.device_id: 0 for d in devices}
    for _ in range(n):
        author = rng.choice(devices)
        item = rng.choice(ITEMS)
        seen = [r for r in out if r.header.item == item and rng.random() < 0.6]
        vv: dict[bytes, int] = {}
        for r in seen:
            for k, v in r.header.versions.items():
                vv[k] = max(vv.get(k, 0), v)
        seqs[author.device_id] += 1
        out.append(make_record(author, seqs[author.device_id], item, vv,
                               deleted=rng.random() < 0.1))
    return out


def state(store: RecordStore) -> tuple[object, ...]:
    heads = {item: [r.id for r in store.heads(item)] for item in ITEMS}
    return store.fingerprint(), store.seen(), sorted(store.record_ids()), heads, \
        store.origins(), [i for i, _h in store.heads_of_kind(Kind.ITEM)]


@pytest.mark.parametrize("seed", range(8))
def test_batched_append_matches_one_by_one(seed: int, tmp_path: Path,
                                           devices: list[DeviceIdentity]) -> None:
    rng = random.Random(seed)
    history = random_history(devices, rng, 40)
    delivery = history[:]
    rng.shuffle(delivery)
    delivery += rng.sample(history, 5)  # duplicates
    cut = rng.randrange(1, len(delivery))
    for make in (MemoryStore, lambda: SqliteStore(tmp_path / f"s{seed}.db")):
        one, many = MemoryStore(), make()
        expected = [one.append(r) for r in delivery]
        got = many.append_many(delivery[:cut]) + many.append_many(delivery[cut:])
        assert got == expected
        assert state(many) == state(one)
        many.close()


def test_conflicting_record_raises_and_writes_nothing(
        tmp_path: Path, devices: list[DeviceIdentity]) -> None:
    a = devices[0]
    first = make_record(a, 1)
    twin = make_record(a, 1, body=b"other")
    for store in (MemoryStore(), SqliteStore(tmp_path / "c.db")):
        store.append(first)
        before = state(store)
        with pytest.raises(IntegrityError):
            store.append_many([make_record(a, 2), twin])
        with pytest.raises(IntegrityError):
            store.append_many([make_record(a, 2), make_record(a, 2, body=b"x")])
        assert state(store) == before
        store.close()
