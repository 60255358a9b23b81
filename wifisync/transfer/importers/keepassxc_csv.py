"""KeePassXC's CSV export (and KeePass 2's own CSV header): one entry per row, group paths."""

from __future__ import annotations

from wifisync.transfer.fields import PASSWORD, TOTP, URL, USERNAME
from wifisync.transfer.model import NOTES, ImportedItem, ItemDraft, ParseResult
from wifisync.transfer.text import first_row, parse_table

FORMAT = "keepassxc-csv"
FAMILY = "keepass"
COLUMNS = {
    "username": USERNAME, "login name": USERNAME, "password": PASSWORD, "url": URL,
    "web site": URL, "totp": TOTP, "notes": NOTES, "comments": NOTES,
}
#: Entry bookkeeping, not data: not kept as fields.
METADATA = frozenset({"icon", "last modified", "created"})


def sniff(data: bytes) -> bool:
    """KeePassXC's ``Group,Title,...`` header or KeePass 2's ``Account,Login Name,...``."""
    head = first_row(data)
    return head[:3] == ["group", "title", "username"] or head[:3] == [
        "account", "login name", "password"]


def parse(data: bytes, source_password: str | None = None) -> ParseResult:
    """Every row; the group path (without the root group) becomes a tag."""
    return parse_table(data, FORMAT, _item)


def _item(cells: dict[str, str]) -> ImportedItem:
    draft = ItemDraft(cells.get("title") or cells.get("account", ""), "login")
    group = cells.get("group", "").strip("/").split("/", 1)
    if len(group) == 2:
        draft.tag(group[1])
    for column, value in cells.items():
        name = COLUMNS.get(column)
        if name is not None and name != NOTES:
            draft.put(name, value, hidden=name in (PASSWORD, TOTP))
        elif name is None and column not in METADATA | {"group", "title", "account"}:
            draft.put(column or "field", value, custom=True)
    draft.put(NOTES, cells.get("notes") or cells.get("comments", ""))
    if not any(draft.has(n) for n in (URL, USERNAME, PASSWORD, TOTP)):
        draft.type = "note"
    return draft.build()
