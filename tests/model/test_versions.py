"""Version vectors order versions, the MVR rule keeps the maximal ones, the HLC never goes back."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from wifisync.model.clock import HybridClock, hlc_pack, hlc_wall_ms
from wifisync.model.versions import dominates, join, maximal

A, B, C = b"a" * 32, b"b" * 32, b"c" * 32

vectors = st.dictionaries(st.sampled_from([A, B, C]), st.integers(1, 4), max_size=3)


def test_dominates_is_pointwise_with_missing_as_zero() -> None:
    assert dominates({A: 2, B: 1}, {A: 1})
    assert dominates({A: 1}, {A: 1})
    assert dominates({A: 1}, {})
    assert not dominates({A: 1}, {B: 1})
    assert not dominates({A: 1, B: 1}, {A: 2})


def test_join_is_pointwise_max() -> None:
    assert join([{A: 1, B: 3}, {A: 2}, {C: 1}]) == {A: 2, B: 3, C: 1}
    assert join([]) == {}


def test_maximal_drops_dominated_keeps_concurrent_ignores_equal() -> None:
    assert maximal([{A: 1}], {A: 2}) == (True, [0])
    assert maximal([{A: 1}], {B: 1}) == (True, [])
    assert maximal([{A: 1}], {A: 1}) == (False, [])
    assert maximal([{A: 2}], {A: 1}) == (False, [])
    assert maximal([{A: 2, B: 1}, {C: 1}], {A: 1, B: 2}) == (True, [])
    assert maximal([{A: 2, B: 1}, {C: 1}], {A: 1, B: 1}) == (False, [])
    assert maximal([{A: 1}, {B: 1}, {C: 1}], {A: 1, B: 1}) == (True, [0, 1])


def _apply_all(order: list[dict[bytes, int]]) -> list[dict[bytes, int]]:
    held: list[dict[bytes, int]] = []
    for v in order:
        keep, drop = maximal(held, v)
        if keep:
            held = [h for i, h in enumerate(held) if i not in drop] + [v]
    return held


def _canon(vs: list[dict[bytes, int]]) -> list[list[tuple[bytes, int]]]:
    return sorted(sorted(v.items()) for v in vs)


@settings(max_examples=100, deadline=None)
@given(st.lists(vectors, min_size=1, max_size=6))
def test_every_order_gives_the_same_maximal_set(vs: list[dict[bytes, int]]) -> None:
    results = {repr(_canon(_apply_all(list(p)))) for p in itertools.permutations(vs)}
    assert len(results) == 1
    held = _apply_all(vs)
    # Exactly the maximal elements, without duplicates.
    for v in vs:
        assert any(dominates(h, v) for h in held)
    for h in held:
        assert not any(dominates(v, h) and not dominates(h, v) for v in vs)
    assert len({tuple(sorted(h.items())) for h in held}) == len(held)


def test_hlc_is_monotonic_and_passes_observed_times() -> None:
    clock = HybridClock()
    t1 = clock.now(1000)
    assert hlc_wall_ms(t1) == 1000
    t2 = clock.now(1000)
    assert t2 > t1
    t3 = clock.now(500)  # the wall clock went backwards
    assert t3 > t2
    clock.observe(hlc_pack(5000, 7))
    t4 = clock.now(2000)
    assert t4 > hlc_pack(5000, 7)
    assert clock.now(9000) == hlc_pack(9000, 0)
    clock.observe(1)  # old times change nothing
    assert clock.now(9000) == hlc_pack(9000, 1)
