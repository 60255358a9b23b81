"""Plaintext exports: wifisync-json (reads back losslessly) and a spreadsheet-style CSV."""

from __future__ import annotations

import csv
import datetime
import io
import json
from typing import Any

from ..vault import ItemView, Vault
from .importers import wifisync_csv as csv_format
from .importers.wifisync_json import FORMAT as JSON_FORMAT
from .importers.wifisync_json import VERSION

EXPORT_FORMATS = (JSON_FORMAT, "csv")


def item_source(view: ItemView) -> str:
    """The key that finds this item again when the export is imported anywhere."""
    return view.state.source or f"wifisync:{view.id_text}"


def export_json(vault: Vault) -> bytes:
    """Every item with its fields, tags, type, hidden flags and source key."""
    items: list[dict[str, Any]] = []
    for view in vault.items():
        s = view.state
        hidden = set(s.hidden)
        items.append({
            "id": view.id_text, "title": s.title, "type": s.type, "tags": s.tags,
            "fields": [{"name": k, "value": v, "hidden": k in hidden}
                       for k, v in s.values.items()],
            "source": item_source(view),
        })
    doc = {"format": JSON_FORMAT, "version": VERSION,
           "exported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
           "items": items}
    return (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode()


def export_csv(vault: Vault) -> bytes:
    """One row per item, one column per field name in use; imports back as wifisync-csv."""
    views = vault.items()
    names = sorted({k for v in views for k in v.state.values})
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*csv_format.META, *(csv_format.column_name(n) for n in names)])
    for v in views:
        values = v.state.values
        writer.writerow([v.state.title, v.state.type, csv_format.join_list(v.state.tags),
                         csv_format.join_list([h for h in v.state.hidden if h in values]),
                         item_source(v), *(values.get(n, "") for n in names)])
    return buf.getvalue().encode()


def export(vault: Vault, format_name: str) -> bytes:
    """The export in the chosen format."""
    return export_json(vault) if format_name == JSON_FORMAT else export_csv(vault)
