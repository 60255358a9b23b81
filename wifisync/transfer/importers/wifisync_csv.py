"""wifisync's own CSV export, read back losslessly (titles, types, tags, fields, hidden flags).

Columns: ``title,type,tags,hidden,source`` then one per field name in use; a field whose
name is one of those five, or starts with ``field:``, has its column written ``field:NAME``.
Tags and hidden field names are joined with ``;``, or written as a JSON array when one of
them holds a ``;`` or starts with ``[``. Exports made before the ``hidden`` and ``source``
columns existed (``title,type,tags,...``) read too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from wifisync.model.items import ITEM_TYPES
from wifisync.transfer.model import ImportedItem, ImportFormatError, ParseResult
from wifisync.transfer.text import csv_rows, decode, first_row, line_ends

FORMAT = "wifisync-csv"
#: Items carry their full source key already (see ``wifisync.transfer.export``).
FAMILY = ""
META = ("title", "type", "tags", "hidden", "source")
FIELD_PREFIX = "field:"
LIST_SEPARATOR = ";"


def column_name(field: str) -> str:
    """The header cell of a field's column."""
    return FIELD_PREFIX + field if field in META or field.startswith(FIELD_PREFIX) else field


def sniff(data: bytes) -> bool:
    """A header that starts with our meta columns."""
    head = first_row(data)
    return head[:5] == list(META) or (head[:3] == list(META[:3]) and "hidden" not in head)


def parse(data: bytes, source_password: str | None = None) -> ParseResult:
    """Every row; a row whose cells do not match the header is skipped and reported."""
    rows = csv_rows(line_ends(decode(data)))
    try:
        _line, header = next(rows)
    except StopIteration:
        raise ImportFormatError("the file is empty") from None
    header = [c.removeprefix("\ufeff") for c in header]
    meta = len(META) if [c.lower() for c in header[:5]] == list(META) else 3
    fields = [c.removeprefix(FIELD_PREFIX) if c.startswith(FIELD_PREFIX) else c
              for c in header[meta:]]
    result = ParseResult(FORMAT)
    for line, row in rows:
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            result.problem(f"line {line}", f"{len(row)} cells where the header has "
                           f"{len(header)} (a truncated or broken row); skipped")
            continue
        title, type_, tags = row[0], row[1].strip(), row[2]
        if type_ not in ITEM_TYPES or not title.strip():
            result.problem(f"line {line}", "no title, or an unknown type; skipped")
            continue
        hidden = _split(row[3]) if meta == len(META) else []
        source = row[4] if meta == len(META) else ""
        values = [(n, v) for n, v in zip(fields, row[meta:], strict=True) if v != ""]
        result.items.append(ImportedItem(
            title=title, type=type_, fields=tuple(values),
            hidden=frozenset(h for h in hidden if h in dict(values)),
            tags=tuple(_split(tags)), source_id=source or None))
    return result


def join_list(names: Sequence[str]) -> str:
    """A list of tags or field names as one cell."""
    if any(LIST_SEPARATOR in n or n.startswith("[") for n in names):
        return json.dumps(list(names), ensure_ascii=False)
    return LIST_SEPARATOR.join(names)


def _split(cell: str) -> list[str]:
    if cell.startswith("["):
        try:
            names = json.loads(cell)
        except ValueError:
            names = None
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return [n for n in names if n]
    return [t for t in cell.split(LIST_SEPARATOR) if t]
