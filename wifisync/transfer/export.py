"""Plaintext exports: wifisync-json (reads back losslessly) and a spreadsheet-style CSV."""

from __future__ import annotations

import csv
import datetime
import io
import json
from pathlib import Path
from typing import Any

from wifisync.transfer.importers import wifisync_csv as csv_format
from wifisync.transfer.importers.wifisync_json import FORMAT as JSON_FORMAT
from wifisync.transfer.importers.wifisync_json import VERSION
from wifisync.vault.attachments import of_state, save_as
from wifisync.vault.unlocked import ItemView, Vault

EXPORT_FORMATS = (JSON_FORMAT, "csv")


def item_source(view: ItemView) -> str:
    """The key that finds this item again when the export is imported anywhere."""
    return view.state.source or f"wifisync:{view.id_text}"


def files_folder(path: Path) -> Path:
    """Where an export to ``path`` puts attachments: a folder of the same base name beside it."""
    return path.with_name(path.stem if path.suffix else f"{path.name}.files")


def export_json(vault: Vault, folder: str | None = None) -> bytes:
    """Every item with its fields, tags, type, hidden flags, source key and attachments
    (``folder``: the attachments' folder, relative to the export)."""
    items: list[dict[str, Any]] = []
    for view in vault.items():
        s = view.state
        hidden = set(s.hidden)
        entry = {
            "id": view.id_text, "title": s.title, "type": s.type, "tags": s.tags,
            "fields": [{"name": k, "value": v, "hidden": k in hidden}
                       for k, v in s.values.items()],
            "source": item_source(view),
        }
        files = of_state(s)
        if files and folder is not None:
            entry["attachments"] = [
                {"name": a.name, "size": a.ref.size, "sha256": a.ref.sha256.hex(),
                 "file": f"{folder}/{view.id_text}/{a.name}"} for a in files]
        items.append(entry)
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


def export(vault: Vault, format_name: str, folder: str | None = None) -> bytes:
    """The export in the chosen format (JSON names attachments' files in ``folder``)."""
    return export_json(vault, folder) if format_name == JSON_FORMAT else export_csv(vault)


def export_files(vault: Vault, folder: Path, overwrite: bool = False) -> int:
    """Write every item's attachments to ``folder/<item id>/<name>``; returns how many.

    Each is checked whole before it is renamed into place; nothing is written for an
    export without attachments. An existing file is replaced only with ``overwrite``.
    """
    written = 0
    for view in vault.items():
        for a in of_state(view.state):
            where = folder / view.id_text
            where.mkdir(parents=True, exist_ok=True, mode=0o700)
            save_as(vault, a, where / a.name, overwrite=overwrite)
            written += 1
    return written
