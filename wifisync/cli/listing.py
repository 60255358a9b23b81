"""How items are listed: summaries, times and the ``list`` table; light enough for the fast path."""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from wifisync.model.clock import hlc_wall_ms
from wifisync.vault.lookup import Summary, summary

if TYPE_CHECKING:
    from wifisync.vault.unlocked import ItemView


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


def print_list(summaries: Sequence[Summary], as_json: bool) -> None:
    """The ``list`` output: a table (ID prefix, type, updated, title, tags) or a JSON array."""
    if as_json:
        print_json([s.public() for s in summaries])
        return
    lines = []
    for s in summaries:
        tags = f"  [{', '.join(s.tags)}]" if s.tags else ""
        lines.append(f"{s.id[:12]}  {s.type:<8}  {s.updated[:16].replace('T', ' ')}  "
                     f"{s.title}{tags}\n")
    sys.stdout.write("".join(lines))
