"""wifisync's own plaintext JSON export, read back losslessly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO, Any

from wifisync.model.items import ITEM_TYPES
from wifisync.transfer.model import ImportedItem, ImportFormatError, ParseResult, with_files
from wifisync.transfer.text import decode

FORMAT = "wifisync-json"
#: Items carry their full source key already (see ``wifisync.transfer.export``).
FAMILY = ""
VERSION = 1
READS_BESIDE = True  # attachments are files in a folder beside the export


def sniff(data: bytes) -> bool:
    """A JSON object whose ``format`` says it is ours."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{") and b'"wifisync-json"' in head


def parse(data: bytes, source_password: str | None = None, path: Path | None = None
          ) -> ParseResult:
    """Every item of the export, exactly as it was written, attachments read beside it."""
    try:
        doc = json.loads(decode(data))
    except ValueError as exc:
        raise ImportFormatError(f"not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ImportFormatError("not a wifisync-json export")
    if doc.get("version") != VERSION:
        raise ImportFormatError(f"wifisync-json version {doc.get('version')!r} is not supported")
    if not isinstance(doc.get("items"), list):
        raise ImportFormatError("the export holds no list of items")
    result = ParseResult(FORMAT)
    for n, raw in enumerate(doc["items"], start=1):
        try:
            item = _item(raw)
            files = _files(raw, n, path, result)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            result.problem(f"item {n}", f"malformed item: {exc}")
            continue
        result.items.append(with_files(item, files))
    return result


def _files(raw: Any, n: int, path: Path | None, result: ParseResult
           ) -> list[tuple[str, Callable[[], IO[bytes]]]]:
    """The item's attachments: files named relative to the export, inside its folder."""
    listed = raw.get("attachments", [])
    if not isinstance(listed, list):
        raise ValueError("attachments must be a list")
    found: list[tuple[str, Callable[[], IO[bytes]]]] = []
    for a in listed:
        name, file = a["name"], a["file"]
        if not isinstance(name, str) or not isinstance(file, str):
            raise ValueError("attachment name and file must be text")
        relative = PurePosixPath(file)
        where = None if path is None else path.parent.joinpath(*relative.parts)
        if relative.is_absolute() or ".." in relative.parts or where is None \
                or not where.is_file() or where.is_symlink():
            result.problem(f"item {n}", f"attachment {name!r}: file {file!r} not found "
                                        "beside the export: not imported")
            continue
        found.append((name, _opener(where)))
    return found


def _opener(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: path.open("rb")


def _item(raw: Any) -> ImportedItem:
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    title, type_, tags = raw["title"], raw["type"], raw.get("tags", [])
    if not isinstance(title, str) or type_ not in ITEM_TYPES:
        raise ValueError("bad title or type")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("tags must be a list of text")
    fields: list[tuple[str, str]] = []
    hidden: set[str] = set()
    for f in raw.get("fields", []):
        name, value = f["name"], f["value"]
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError("field name and value must be text")
        fields.append((name, value))
        if f.get("hidden"):
            hidden.add(name)
    if len({n for n, _ in fields}) != len(fields):
        raise ValueError("a field name appears twice")
    source = raw.get("source")
    return ImportedItem(title=title, type=type_, fields=tuple(fields),
                        hidden=frozenset(hidden), tags=tuple(tags),
                        source_id=source if isinstance(source, str) and source else None)
