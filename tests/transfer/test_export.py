"""Plaintext exports: wifisync-json reads back losslessly; CSV has one column per field."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from tests.transfer import samples
from tests.transfer.conftest import new_vault
from wifisync.transfer import importers
from wifisync.transfer.export import export_csv, export_json
from wifisync.transfer.importing import import_items
from wifisync.vault.unlocked import Vault


def fill(vault: Vault) -> None:
    for data in (samples.MSECURE_B.encode(), json.dumps(samples.BITWARDEN_JSON).encode()):
        module = importers.importer(None, data)
        import_items(vault, module.parse(data), module.FAMILY)
    vault.add("Typed by hand", "note", {"notes": "multi\nline", "odd name: x": "y"}, ["a", "b"])


def comparable(export: bytes) -> list[dict[str, Any]]:
    doc = json.loads(export)
    return sorted(({k: v for k, v in i.items() if k != "id"} for i in doc["items"]),
                  key=lambda i: (i["title"], i["source"]))


def test_wifisync_json_round_trip_is_lossless(vault: Vault) -> None:
    fill(vault)
    first = export_json(vault)
    other = new_vault()
    parsed = importers.parse(first)
    assert parsed.format == "wifisync-json" and not parsed.problems
    import_items(other, parsed, "")
    second = export_json(other)
    assert comparable(first) == comparable(second)
    items = comparable(first)
    assert len(items) == 8
    router = next(i for i in items if i["source"] == "bitwarden:i1")
    assert {f["name"] for f in router["fields"] if f["hidden"]} == {
        "password", "PIN", "password history"}


def test_importing_our_own_export_into_the_same_vault_changes_nothing(vault: Vault) -> None:
    fill(vault)
    before = vault.store.count_records()
    summary = import_items(vault, importers.parse(export_json(vault)), "")
    assert summary.total("skipped") == 8 and summary.total("imported") == 0
    assert vault.store.count_records() == before


def test_csv_export_has_a_column_per_field(vault: Vault) -> None:
    fill(vault)
    rows = list(csv.reader(io.StringIO(export_csv(vault).decode())))
    header = rows[0]
    assert header[:3] == ["title", "type", "tags"] and "password" in header
    by_title = {r[0]: dict(zip(header, r, strict=True)) for r in rows[1:]}
    assert by_title["Typed by hand"]["notes"] == "multi\nline"
    assert by_title["Typed by hand"]["tags"] == "a;b"
    assert len(rows) == 9
