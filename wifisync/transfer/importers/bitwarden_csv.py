"""Bitwarden's CSV export (individual and organization vaults; logins and notes only)."""

from __future__ import annotations

from wifisync.transfer.fields import PASSWORD, SOURCE_TYPE, TOTP, URL, USERNAME
from wifisync.transfer.model import NOTES, ImportedItem, ItemDraft, ParseResult
from wifisync.transfer.text import csv_rows, first_row, parse_table

FORMAT = "bitwarden-csv"
FAMILY = "bitwarden"
TYPES = {"login": "login", "note": "note", "card": "card", "identity": "identity"}
COLUMNS = {
    "login_uri": URL, "uri": URL, "login_username": USERNAME, "username": USERNAME,
    "login_password": PASSWORD, "password": PASSWORD, "login_totp": TOTP, "totp": TOTP,
}
HANDLED = frozenset({"folder", "collections", "favorite", "type", "name", "notes", "fields",
                     "reprompt", *COLUMNS})


def sniff(data: bytes) -> bool:
    """The header names ``type`` and ``name`` beside ``folder``/``favorite`` or ``collections``."""
    head = set(first_row(data))
    return {"type", "name", "notes", "fields"} <= head and bool(
        {"folder", "collections"} & head)


def parse(data: bytes, source_password: str | None = None) -> ParseResult:
    """Every row; several URIs share one cell, custom fields are ``name: value`` lines."""
    return parse_table(data, FORMAT, _item)


def _item(cells: dict[str, str]) -> ImportedItem:
    kind = cells.get("type", "").strip().lower()
    draft = ItemDraft(cells.get("name", ""), TYPES.get(kind, "note"))
    if kind and kind not in TYPES:
        draft.put(SOURCE_TYPE, kind, custom=True)
    draft.tag(cells.get("folder"))
    for c in (cells.get("collections") or "").split(","):
        draft.tag(c)
    if cells.get("favorite", "").strip() in ("1", "true"):
        draft.tag("favorite")
    for column, name in COLUMNS.items():
        value = cells.get(column, "")
        if name == URL:
            for uri in next((r for _l, r in csv_rows(value)), []) if value else []:
                draft.put(URL, uri.strip())
        elif value:
            draft.put(name, value, hidden=name in (PASSWORD, TOTP))
    for name, value in _custom_fields(cells.get("fields", "")):
        draft.put(name, value, custom=True)
    if cells.get("reprompt", "").strip() == "1":
        draft.put("master password re-prompt", "true", custom=True)
    for column, value in cells.items():
        if column not in HANDLED:
            draft.put(column, value, custom=True)
    draft.put(NOTES, cells.get("notes", ""))
    return draft.build()


def _custom_fields(cell: str) -> list[tuple[str, str]]:
    """``name: value`` lines split at the last ``": "``; other lines continue the value."""
    out: list[tuple[str, str]] = []
    for line in cell.split("\n"):
        name, sep, value = line.rpartition(": ")
        if sep and name:
            out.append((name, value))
        elif out:
            out[-1] = (out[-1][0], f"{out[-1][1]}\n{line}")
        elif line.strip():
            out.append(("field", line))
    return out
