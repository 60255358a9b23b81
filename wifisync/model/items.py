"""The item model and the field-level merge of concurrent versions.

A payload holds cells ``[value, time]``: the attributes ``title``, ``type`` and
``tags`` and every named field, each with its own hybrid-logical-clock time, plus
the history of values each key has lost or replaced. A field that was removed keeps
a cell whose value is ``None`` so that a merge does not bring it back. Attachments are
cells too (``attachment:NAME``, the value an :class:`AttachmentRef` in plain form): they
merge, keep history and go with a delete exactly like fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wifisync.errors import IntegrityError

ITEM_TYPES = ("login", "card", "note", "identity")
ATTRIBUTES = ("title", "type", "tags", "hidden", "source")
HISTORY_LIMIT = 32
ATTACHMENT_PREFIX = "attachment:"

Cell = tuple[Any, int]


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """What an item version says of one attachment: its content ID, size and SHA-256."""

    id: bytes
    size: int
    sha256: bytes

    def to_value(self) -> dict[str, Any]:
        """The cell value stored in the payload."""
        return {"id": self.id, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_value(cls, value: Any) -> AttachmentRef:
        """Parse a cell value, checking its shape."""
        if not isinstance(value, dict) or set(value) != {"id", "size", "sha256"}:
            raise IntegrityError("attachment reference has the wrong shape")
        ident, size, digest = value["id"], value["size"], value["sha256"]
        if not (isinstance(ident, bytes) and len(ident) == 32 and isinstance(digest, bytes)
                and len(digest) == 32 and type(size) is int and 0 <= size < 2**63):
            raise IntegrityError("attachment reference has the wrong shape")
        return cls(ident, size, digest)


@dataclass(slots=True)
class ItemState:
    """A decrypted item version (or the merge of several), cell by cell."""

    attrs: dict[str, Cell] = field(default_factory=dict)
    fields: dict[str, Cell] = field(default_factory=dict)
    history: dict[str, list[Cell]] = field(default_factory=dict)
    files: dict[str, Cell] = field(default_factory=dict)  # attachment name -> reference

    @property
    def title(self) -> str:
        """The item's title."""
        return str(self.attrs.get("title", ("", 0))[0])

    @property
    def type(self) -> str:
        """login, card, note or identity."""
        return str(self.attrs.get("type", ("login", 0))[0])

    @property
    def tags(self) -> list[str]:
        """The item's tags, sorted."""
        return sorted(self.attrs.get("tags", ([], 0))[0])

    @property
    def hidden(self) -> list[str]:
        """Names of the fields shown masked (a source's secret/protected flag), sorted."""
        return sorted(self.attrs.get("hidden", ([], 0))[0])

    @property
    def source(self) -> str | None:
        """Stable key of the imported item this one came from, so a re-import updates it."""
        value = self.attrs.get("source", (None, 0))[0]
        return None if value is None else str(value)

    @property
    def values(self) -> dict[str, str]:
        """Field name to value, removed fields left out."""
        return {k: v for k, (v, _t) in sorted(self.fields.items()) if v is not None}

    @property
    def attachments(self) -> dict[str, tuple[AttachmentRef, int]]:
        """Attachment name to its reference and the time it was attached, detached ones left out."""
        return {k: (AttachmentRef.from_value(v), t) for k, (v, t) in sorted(self.files.items())
                if v is not None}

    @property
    def updated(self) -> int:
        """Latest clock time of any cell."""
        cells = [*self.attrs.values(), *self.fields.values(), *self.files.values()]
        return max([t for _v, t in cells], default=0)

    def set(self, key: str, value: Any, now: int) -> None:
        """Write one attribute (see ``ATTRIBUTES``) or field ``field:NAME``."""
        table, name = self._table(key)
        old = table.get(name)
        if old is not None and old[0] == value:
            return
        if old is not None and old[0] is not None:
            self._remember(key, old)
        table[name] = (value, now)

    def clamp_times(self, latest: int) -> None:
        """Bring every cell time above ``latest`` (the carrying record's time) down to it."""
        for table in (self.attrs, self.fields):
            for k, (value, t) in list(table.items()):
                if t > latest:
                    table[k] = (value, latest)
        for k, cells in self.history.items():
            self.history[k] = [(v, min(t, latest)) for v, t in cells]

    def _table(self, key: str) -> tuple[dict[str, Cell], str]:
        if key in ATTRIBUTES:
            return self.attrs, key
        if key.startswith("field:"):
            return self.fields, key[6:]
        if key.startswith(ATTACHMENT_PREFIX):
            return self.files, key[len(ATTACHMENT_PREFIX):]
        raise ValueError(f"unknown item key {key!r}")

    def _remember(self, key: str, cell: Cell) -> None:
        past = self.history.setdefault(key, [])
        if cell not in past:
            past.append(cell)
            past.sort(key=lambda c: c[1])
            del past[:-HISTORY_LIMIT]

    def to_payload(self) -> dict[str, Any]:
        """Plain form that is encrypted into a record body."""
        payload: dict[str, Any] = {
            "attrs": {k: list(c) for k, c in self.attrs.items()},
            "fields": {k: list(c) for k, c in self.fields.items()},
            "history": {k: [list(c) for c in cs] for k, cs in self.history.items()},
        }
        if self.files:  # absent in items that never had one: their payloads stay as they were
            payload["attachments"] = {k: list(c) for k, c in self.files.items()}
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> ItemState:
        """Parse a decrypted payload, checking its shape."""
        try:
            attrs = {k: _cell(c) for k, c in payload["attrs"].items()}
            fields = {str(k): _cell(c) for k, c in payload["fields"].items()}
            history = {str(k): [_cell(c) for c in cs] for k, cs in payload["history"].items()}
            files = {str(k): _cell(c) for k, c in payload.get("attachments", {}).items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IntegrityError("item payload has the wrong shape") from exc
        for value, _t in files.values():
            if value is not None:
                AttachmentRef.from_value(value)
        return cls(attrs=attrs, fields=fields, history=history, files=files)


def _cell(c: Any) -> Cell:
    value, t = c
    if not isinstance(t, int):
        raise ValueError("cell time")
    return (value, t)


def _winner(cells: list[Cell]) -> Cell:
    """The later write wins; equal times are settled by the value so every device agrees."""
    return max(cells, key=lambda c: (c[1], repr(c[0])))


def merge_states(states: Iterable[ItemState]) -> ItemState:
    """Merge concurrent versions key by key; every loser goes to that key's history."""
    states = list(states)
    if len(states) == 1:
        return states[0]
    merged = ItemState()
    prefixes = {"attrs": "", "fields": "field:", "files": ATTACHMENT_PREFIX}
    for table_name, prefix in prefixes.items():
        keys = {k for s in states for k in getattr(s, table_name)}
        for k in sorted(keys):
            cells = [getattr(s, table_name)[k] for s in states if k in getattr(s, table_name)]
            win = _winner(cells)
            getattr(merged, table_name)[k] = win
            hkey = prefix + k
            for c in cells:
                if c[0] != win[0] and c[0] is not None:
                    merged._remember(hkey, c)
    for s in states:
        for k, cs in s.history.items():
            for c in cs:
                merged._remember(k, c)
    return merged
