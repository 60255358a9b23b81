"""The neutral form every importer produces, before anything touches the vault."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from wifisync.errors import WifisyncError

NOTES = "notes"


class ImportFormatError(WifisyncError):
    """The file cannot be read as the chosen (or detected) format; nothing is imported."""


class SourcePasswordError(WifisyncError):
    """The source file's own password is missing or wrong; nothing is imported."""


@dataclass(frozen=True, slots=True)
class ImportedFile:
    """A file attached to a source item, opened (as a stream) only when it is stored."""

    name: str
    open: Callable[[], IO[bytes]]


@dataclass(frozen=True, slots=True)
class ImportedItem:
    """One item read from a source file, in wifisync's terms."""

    title: str
    type: str
    fields: tuple[tuple[str, str], ...]
    hidden: frozenset[str] = frozenset()
    tags: tuple[str, ...] = ()
    custom: tuple[str, ...] = ()
    source_id: str | None = None
    attachments: tuple[ImportedFile, ...] = ()

    @property
    def values(self) -> dict[str, str]:
        """Field name to value."""
        return dict(self.fields)


@dataclass(frozen=True, slots=True)
class Problem:
    """A source item that was skipped or only partly kept, and where it is in the file."""

    position: str
    reason: str

    def __str__(self) -> str:
        return f"{self.position}: {self.reason}"


@dataclass(slots=True)
class ParseResult:
    """Everything one file yielded: its items and what could not be taken."""

    format: str
    items: list[ImportedItem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def problem(self, position: str, reason: str) -> None:
        """Record a skipped or partly kept item."""
        self.problems.append(Problem(position, reason))


def file_name(name: str, taken: set[str]) -> str:
    """A source's attachment name as a plain file name not in ``taken`` (``a (2).pdf``)."""
    base = "".join("_" if c in "/\\" or not c.isprintable() else c
                   for c in name.strip()).strip(".")[:200] or "attachment"
    unique, n = base, 1
    while unique in taken:
        n += 1
        stem, dot, ext = base.rpartition(".")
        unique = f"{stem} ({n}).{ext}" if dot and stem else f"{base} ({n})"
    return unique


def with_files(item: ImportedItem, files: list[tuple[str, Callable[[], IO[bytes]]]]
               ) -> ImportedItem:
    """An item with attached files added (names made plain and unique)."""
    if not files:
        return item
    taken = {f.name for f in item.attachments}
    added = []
    for name, opener in files:
        unique = file_name(name, taken)
        taken.add(unique)
        added.append(ImportedFile(unique, opener))
    return dataclasses.replace(item, attachments=(*item.attachments, *added))


class ItemDraft:
    """Collects one item's fields: unique names, empty values left out, secrets flagged."""

    def __init__(self, title: str, type_: str) -> None:
        self.title = title.strip()
        self.type = type_
        self._fields: dict[str, str] = {}
        self._hidden: set[str] = set()
        self._custom: list[str] = []
        self.tags: list[str] = []

    def put(self, name: str, value: object, *, hidden: bool = False,
            custom: bool = False) -> str | None:
        """Add a field (a taken name gets a number); returns the name used, None if empty."""
        text = "" if value is None else str(value)
        if not text.strip():
            return None
        base = " ".join(name.split()) or "field"
        unique, n = base, 1
        while unique in self._fields:
            n += 1
            unique = f"{base} {n}"
        self._fields[unique] = text
        if hidden:
            self._hidden.add(unique)
        if custom:
            self._custom.append(unique)
        return unique

    def has(self, name: str) -> bool:
        """Whether a field of this exact name is already set."""
        return name in self._fields

    def tag(self, *tags: str | None) -> None:
        """Add tags, ignoring empty ones and duplicates."""
        for t in tags:
            t = (t or "").strip()
            if t and t not in self.tags:
                self.tags.append(t)

    def build(self, source_id: str | None = None) -> ImportedItem:
        """The finished item; an empty title becomes ``Untitled``."""
        return ImportedItem(
            title=self.title or "Untitled", type=self.type,
            fields=tuple(self._fields.items()), hidden=frozenset(self._hidden),
            tags=tuple(self.tags), custom=tuple(self._custom),
            source_id=source_id or None,
        )
