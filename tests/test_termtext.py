"""Text from other devices prints as one literal line: controls become escapes."""

from __future__ import annotations

from wifisync.termtext import shown


def test_controls_newlines_and_bidi_overrides_become_visible_escapes() -> None:
    assert shown("evil\x1b]0;pwned\x07\nforged\r\u202etxt.exe\x9b") == \
        "evil\\x1b]0;pwned\\x07\\nforged\\r\\u202etxt.exe\\x9b"


def test_ordinary_names_are_unchanged() -> None:
    for name in ("laptop", "Küche-PC", "María's phone", "客厅", "NAS 🗄️", "a\\b"):
        assert shown(name) == name
