"""Item states merge field by field: the later write wins, losers go to history, in any order."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wifisync.errors import IntegrityError
from wifisync.model.items import HISTORY_LIMIT, ItemState, merge_states


def state(**cells: tuple[object, int]) -> ItemState:
    s = ItemState()
    for key, (value, t) in cells.items():
        s.set(key.replace("__", ":"), value, t)
    return s


def test_set_keeps_history_of_replaced_values() -> None:
    s = ItemState()
    s.set("field:password", "one", 1)
    s.set("field:password", "two", 2)
    s.set("field:password", "two", 3)  # same value: no new time, no history
    assert s.fields["password"] == ("two", 2)
    assert s.history["field:password"] == [("one", 1)]
    s.set("field:password", None, 4)
    assert "password" not in s.values
    assert s.history["field:password"] == [("one", 1), ("two", 2)]


def test_history_is_bounded() -> None:
    s = ItemState()
    for t in range(HISTORY_LIMIT + 10):
        s.set("title", f"t{t}", t)
    assert len(s.history["title"]) == HISTORY_LIMIT
    assert s.history["title"][-1] == (f"t{HISTORY_LIMIT + 8}", HISTORY_LIMIT + 8)


def test_unknown_key_is_refused() -> None:
    with pytest.raises(ValueError):
        ItemState().set("password", "x", 1)


def test_properties() -> None:
    s = state(title=("Bank", 5), type=("card", 6), tags=(["b", "a"], 7),
              field__pin=("1234", 9), field__gone=(None, 10))
    assert (s.title, s.type, s.tags, s.values, s.updated) == (
        "Bank", "card", ["a", "b"], {"pin": "1234"}, 10)
    empty = ItemState()
    assert (empty.title, empty.type, empty.tags, empty.values, empty.updated) == (
        "", "login", [], {}, 0)


def test_payload_round_trip() -> None:
    s = state(title=("Bank", 5), field__pin=("1234", 9))
    s.set("field:pin", "9999", 11)
    again = ItemState.from_payload(s.to_payload())
    assert again == s


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"attrs": {}, "fields": {}},
        {"attrs": [], "fields": {}, "history": {}},
        {"attrs": {"title": ["x"]}, "fields": {}, "history": {}},
        {"attrs": {"title": ["x", "1"]}, "fields": {}, "history": {}},
        {"attrs": {}, "fields": {"f": 3}, "history": {}},
        {"attrs": {}, "fields": {}, "history": {"title": [["x", 1.5]]}},
    ],
)
def test_malformed_payload_is_an_integrity_error(payload: dict[str, object]) -> None:
    with pytest.raises(IntegrityError):
        ItemState.from_payload(payload)


def test_different_fields_both_survive() -> None:
    base = {"title": ("Mail", 1), "field__user": ("ann", 1), "field__password": ("old", 1)}
    left = state(**base)
    left.set("field:user", "anne", 5)
    right = state(**base)
    right.set("field:password", "new", 6)
    merged = merge_states([left, right])
    assert merged.values == {"user": "anne", "password": "new"}
    assert merged.history["field:user"] == [("ann", 1)]
    assert merged.history["field:password"] == [("old", 1)]


def test_same_field_later_time_wins_and_loser_goes_to_history() -> None:
    early = state(field__password=("early", 5))
    late = state(field__password=("late", 7))
    for order in ([early, late], [late, early]):
        merged = merge_states(order)
        assert merged.values == {"password": "late"}
        assert ("early", 5) in merged.history["field:password"]


def test_equal_times_are_settled_the_same_way_everywhere() -> None:
    a = state(field__password=("alpha", 5))
    b = state(field__password=("beta", 5))
    one, two = merge_states([a, b]), merge_states([b, a])
    assert one == two
    loser = "alpha" if one.values["password"] == "beta" else "beta"
    assert (loser, 5) in one.history["field:password"]


def test_later_removal_wins_and_stays_removed() -> None:
    kept = state(field__pin=("1234", 5), field__user=("ann", 5))
    removed = state(field__pin=("1234", 5), field__user=("ann", 5))
    removed.set("field:pin", None, 8)
    merged = merge_states([kept, removed])
    assert merged.values == {"user": "ann"}
    # merging again with the old version never resurrects it
    assert merge_states([kept, merged]).values == {"user": "ann"}


def test_later_edit_beats_an_earlier_removal() -> None:
    removed = state(field__pin=(None, 6))
    edited = state(field__pin=("4321", 9))
    assert merge_states([removed, edited]).values == {"pin": "4321"}


def test_single_state_merges_to_itself() -> None:
    s = state(title=("x", 1))
    assert merge_states([s]) is s


cells = st.tuples(st.sampled_from(["a", "b", "c", None]), st.integers(1, 4))
states = st.builds(
    lambda title, f, g: state(title=title, field__f=f, field__g=g),
    st.tuples(st.sampled_from(["x", "y"]), st.integers(1, 4)), cells, cells,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(states, min_size=2, max_size=4))
def test_merge_does_not_depend_on_order_and_keeps_the_latest_cell(ss: list[ItemState]) -> None:
    results = [merge_states(p) for p in itertools.permutations(ss)]
    assert all(r.attrs == results[0].attrs and r.fields == results[0].fields for r in results)
    merged = results[0]
    for name in ("f", "g"):
        assert merged.fields[name][1] == max(s.fields[name][1] for s in ss)
    # nested merges agree with a flat one
    nested = merge_states([merge_states(ss[:2]), *ss[2:]])
    assert nested.fields == merged.fields and nested.attrs == merged.attrs
