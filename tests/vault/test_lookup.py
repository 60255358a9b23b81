"""Finding items: case-insensitive titles, ID prefixes, ambiguity and the search filters."""

from __future__ import annotations

import pytest

from wifisync.errors import AmbiguousItemError, ItemNotFoundError
from wifisync.vault.lookup import field_value, matches, plural, resolve, summary

A, B, C = bytes.fromhex("aa" * 16), bytes.fromhex("ab" * 16), bytes.fromhex("cc" * 16)
ITEMS = [(A, "Mail"), (B, "mail"), (C, "Home router")]


def test_exact_title_then_any_case_then_prefix() -> None:
    assert resolve("Mail", ITEMS) == A
    assert resolve("home ROUTER", ITEMS) == C
    assert resolve("CCCC", ITEMS) == C
    assert resolve(B.hex(), ITEMS) == B


def test_ambiguity_lists_id_prefixes_and_titles() -> None:
    with pytest.raises(AmbiguousItemError) as e:
        resolve("MAIL", ITEMS)
    assert "matches 2 items" in str(e.value)
    assert "aaaaaaaaaaaa 'Mail'" in str(e.value) and "abababababab 'mail'" in str(e.value)
    with pytest.raises(AmbiguousItemError):
        resolve("aaab", [(A, "x"), (bytes.fromhex("aaab" + "00" * 14), "y"),
                         (bytes.fromhex("aaab" + "11" * 14), "z")])


def test_a_short_prefix_names_the_minimum() -> None:
    with pytest.raises(ItemNotFoundError, match="at least 4 characters"):
        resolve("ccc", ITEMS)
    with pytest.raises(ItemNotFoundError, match="no item matches 'Bank'"):
        resolve("Bank", ITEMS)


def test_search_looks_at_title_tags_username_url() -> None:
    s = summary("aa", "Home router", "login", ["Network"], "2026-01-01T00:00:00.000Z",
                {"Username": "admin", "URL": "http://192.168.1.1", "password": "secret"})
    assert matches(s, "ROUTER") and matches(s, "netw") and matches(s, "ADMIN")
    assert matches(s, "168.1") and not matches(s, "secret")
    assert matches(s, tag="network") and not matches(s, tag="net")
    assert matches(s, type_="login") and not matches(s, type_="card")


def test_field_value_and_plural() -> None:
    assert field_value("x", {"Password": "p"}, "password") == "p"
    with pytest.raises(ItemNotFoundError, match=r"its fields: Password"):
        field_value("x", {"Password": "p"}, "pin")
    assert (plural(1, "item"), plural(2, "item"), plural(0, "entry", "entries")) == (
        "1 item", "2 items", "0 entries")
