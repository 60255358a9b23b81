"""1Password's CSV export (1Password 8 columns, and the older user-chosen column sets)."""

from __future__ import annotations

from wifisync.transfer.fields import PASSWORD, TOTP, URL, USERNAME
from wifisync.transfer.model import NOTES, ImportedItem, ItemDraft, ParseResult
from wifisync.transfer.text import first_row, parse_table

FORMAT = "1password-csv"
FAMILY = "1password"
COLUMNS = {
    "url": URL, "urls": URL, "website": URL, "username": USERNAME, "password": PASSWORD,
    "otpauth": TOTP, "one-time password": TOTP, "notes": NOTES, "notesplain": NOTES,
}
FLAGS = {"favorite": "favorite", "archived": "archived"}


def sniff(data: bytes) -> bool:
    """A header with ``title``, ``username`` and ``password`` and no KeePass ``group``."""
    head = set(first_row(data))
    return {"title", "username", "password"} <= head and "group" not in head and (
        "url" in head or "notes" in head or "otpauth" in head)


def parse(data: bytes, source_password: str | None = None) -> ParseResult:
    """Every row; columns we do not know are kept as custom fields."""
    return parse_table(data, FORMAT, _item)


def _item(cells: dict[str, str]) -> ImportedItem:
    draft = ItemDraft(cells.get("title", ""), "login")
    for tag in (cells.get("tags") or "").replace(";", ",").split(","):
        draft.tag(tag)
    for column, tag in FLAGS.items():
        if cells.get(column, "").strip().lower() in ("true", "1", "yes"):
            draft.tag(tag)
    for column, value in cells.items():
        name = COLUMNS.get(column)
        if name is not None and name != NOTES:
            draft.put(name, value, hidden=name in (PASSWORD, TOTP))
        elif name is None and column not in FLAGS and column not in ("title", "tags"):
            draft.put(column or "field", value, custom=True)
    notes = "\n".join(cells[c] for c in ("notes", "notesplain") if cells.get(c))
    draft.put(NOTES, notes)
    if not any(draft.has(n) for n in (URL, USERNAME, PASSWORD, TOTP)):
        draft.type = "note"
    return draft.build()
