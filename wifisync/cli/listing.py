"""How items are listed: summaries, times and the ``list`` table; light enough for the fast path."""

from __future__ import annotations

import datetime
import itertools
import json
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from wifisync.model.clock import hlc_wall_ms
from wifisync.vault.lookup import Summary, summary

if TYPE_CHECKING:
    from wifisync.vault.unlocked import ItemView

WRITE_CHUNK = 1000  # lines per write to standard output


def iso_time(hlc_time: int) -> str:
    """A hybrid-logical-clock time as ISO-8601 UTC with milliseconds."""
    when = datetime.datetime.fromtimestamp(hlc_wall_ms(hlc_time) / 1000, tz=datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summarise(view: ItemView) -> Summary:
    """The searchable summary of an item (no secret field values)."""
    s = view.state
    return summary(view.id_text, s.title, s.type, s.tags, iso_time(s.updated), s.values)


def print_json(value: Any) -> None:
    """Indented JSON, non-ASCII kept as it is."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def print_list(summaries: Iterable[Summary], as_json: bool) -> None:
    """The ``list`` output: a table (ID prefix, type, updated, title, tags) or a JSON array."""
    if as_json:
        write_json_array(s.public() for s in summaries)
    else:
        write_lines(table_line(s) for s in summaries)


def table_line(s: Summary) -> str:
    """One row of the ``list`` table."""
    tags = f"  [{', '.join(s.tags)}]" if s.tags else ""
    return f"{s.id[:12]}  {s.type:<8}  {s.updated[:16].replace('T', ' ')}  {s.title}{tags}\n"


def write_lines(lines: Iterable[str], chunk: int = WRITE_CHUNK) -> None:
    """Write lines to standard output a chunk at a time (never one string of them all)."""
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= chunk:
            sys.stdout.write("".join(batch))
            batch.clear()
    sys.stdout.write("".join(batch))


def write_json_array(values: Iterable[Any]) -> None:
    """Exactly what :func:`print_json` prints for a list of them, written value by value."""
    write_json_elements(json_element(v) for v in values)


def json_element(value: Any) -> str:
    """One element of an indented JSON array, as ``json.dumps(array, indent=2)`` has it."""
    return "\n".join("  " + line for line in json.dumps(
        value, indent=2, ensure_ascii=False).split("\n"))


def write_json_elements(elements: Iterable[str]) -> None:
    """The JSON array of elements made by :func:`json_element`, written a chunk at a time."""
    lines = (("[\n" if i == 0 else ",\n") + e for i, e in enumerate(elements))
    first = next(lines, None)
    if first is None:
        sys.stdout.write("[]\n")
        return
    write_lines(itertools.chain([first], lines, ["\n]\n"]))
