"""Reading text out of exported files: encodings, line breaks and CSV rows with line numbers."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator

from wifisync.transfer.model import ImportedItem, ImportFormatError, ParseResult

csv.field_size_limit(16 * 1024 * 1024)


def decode(data: bytes) -> str:
    """UTF-8 (with or without a BOM, also UTF-16 with a BOM), else Windows-1252."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def normalise_newlines(text: str) -> str:
    """CR LF, lone CR and the vertical tab of old mSecure Mac exports become LF."""
    return line_ends(text).replace("\x0b", "\n")


def line_ends(text: str) -> str:
    """CR LF and lone CR become LF (a whole file, before CSV parsing keeps rows intact)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """Rows of a CSV text with the line each starts on; a broken file raises with its line."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFormatError(f"line {reader.line_num}: unreadable CSV: {exc}") from exc
        start, line = line, reader.line_num + 1
        yield start, row


def header_key(cell: str) -> str:
    """A header cell compared loosely: case, spaces and quotes do not matter."""
    return cell.strip().strip('"').strip().lower()


def first_row(data: bytes) -> list[str]:
    """The header row of a CSV file, lower-cased, or [] when there is none."""
    text = line_ends(decode(data[:65536]))
    try:
        for _line, row in csv_rows(text):
            return [header_key(c) for c in row]
    except Exception:
        return []
    return []


def parse_table(data: bytes, format_name: str,
                make_item: Callable[[dict[str, str]], ImportedItem]) -> ParseResult:
    """A CSV file with a header row: one item per row, a row with surplus cells reported."""
    rows = csv_rows(line_ends(decode(data)))
    try:
        _line, header = next(rows)
    except StopIteration as exc:
        raise ImportFormatError("the file is empty") from exc
    names = [header_key(c) for c in header]
    result = ParseResult(format_name)
    for line, row in rows:
        if not any(c.strip() for c in row):
            continue
        if len(row) > len(names):
            result.problem(f"line {line}", f"{len(row) - len(names)} cell(s) more than the "
                                           "header has (a broken quote?); skipped")
            continue
        if len(row) < len(names):
            result.problem(f"line {line}", f"{len(row)} of the header's {len(names)} cells "
                                           "(a truncated row?); skipped")
            continue
        cells = [normalise_newlines(c) for c in row]
        item = make_item(dict(zip(names, cells, strict=False)))
        if not item.fields and item.title == "Untitled":
            result.problem(f"line {line}", "no title and no field; skipped")
            continue
        result.items.append(item)
    return result
