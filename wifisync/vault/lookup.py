"""Finding items: what ``list QUERY`` matches and what an ITEM argument names.

Pure functions over (ID, title) pairs and item summaries, shared by the CLI (which has
the decrypted items in hand) and the unlock agent (which keeps only summaries).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wifisync.errors import AmbiguousItemError, ItemNotFoundError

MIN_PREFIX = 4  # hex characters of an ID prefix
MAX_LISTED = 8  # candidates named in an "ambiguous" message
USERNAME_FIELDS = ("username", "user", "login", "email")
URL_FIELDS = ("url", "website", "uri")
HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Summary:
    """What ``list`` shows and searches of an item: no field value but username and URL."""

    id: str
    title: str
    type: str
    tags: tuple[str, ...]
    updated: str
    username: str = ""
    url: str = ""

    def public(self) -> dict[str, object]:
        """The ``list --json`` object."""
        return {"id": self.id, "title": self.title, "type": self.type, "tags": list(self.tags),
                "updated": self.updated}

    def row(self) -> list[Any]:
        """``[id, title, type, tags, updated]``: how the unlock agent sends a summary."""
        return [self.id, self.title, self.type, list(self.tags), self.updated]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Summary:
        """The inverse of :meth:`row`."""
        item_id, title, type_, tags, updated = row
        return cls(str(item_id), str(title), str(type_), tuple(map(str, tags)), str(updated))


def summary(item_id: str, title: str, type_: str, tags: Sequence[str], updated: str,
            values: Mapping[str, str]) -> Summary:
    """A summary of one item, its username and URL taken from the usual field names."""
    lower = {k.lower(): v for k, v in values.items()}
    username = next((lower[k] for k in USERNAME_FIELDS if k in lower), "")
    url = next((lower[k] for k in URL_FIELDS if k in lower), "")
    return Summary(item_id, title, type_, tuple(tags), updated, username, url)


def matches(s: Summary, query: str | None = None, tag: str | None = None,
            type_: str | None = None) -> bool:
    """``list`` filters: QUERY a case-insensitive substring of title, a tag, username or URL."""
    if type_ is not None and s.type != type_:
        return False
    if tag is not None and tag.casefold() not in {t.casefold() for t in s.tags}:
        return False
    if query:
        q = query.casefold()
        return any(q in text.casefold() for text in (s.title, s.username, s.url, *s.tags))
    return True


def resolve(ref: str, candidates: Iterable[tuple[bytes, str]]) -> bytes:
    """The one item ``ref`` names among live ``(id, title)`` pairs.

    In order: an exact ID; a unique ID prefix of at least :data:`MIN_PREFIX` characters or
    an exact title; a title that differs only in case. Ambiguity names the candidates.
    """
    items = list(candidates)
    ref_l = ref.strip().lower()
    exact_id = [i for i, _t in items if i.hex() == ref_l]
    if exact_id:
        return exact_id[0]
    hexish = bool(ref_l) and set(ref_l) <= HEX
    found = {i: t for i, t in items
             if (len(ref_l) >= MIN_PREFIX and i.hex().startswith(ref_l)) or t == ref}
    if not found:
        folded = ref.casefold()
        found = {i: t for i, t in items if t.casefold() == folded}
    if len(found) == 1:
        return next(iter(found))
    if len(found) > 1:
        raise AmbiguousItemError(ambiguous(ref, found))
    if hexish and len(ref_l) < MIN_PREFIX:
        raise ItemNotFoundError(f"no item is titled {ref!r}, and an ID prefix needs at least "
                         f"{MIN_PREFIX} characters")
    raise ItemNotFoundError(f"no item matches {ref!r}; `wifisync list {_quoted(ref)}` searches")


def ambiguous(ref: str, found: Mapping[bytes, str]) -> str:
    """One line naming the items ``ref`` matches, by ID prefix and title."""
    named = sorted(found.items(), key=lambda it: (it[1].casefold(), it[0]))
    shown = ", ".join(f"{i.hex()[:12]} {t!r}" for i, t in named[:MAX_LISTED])
    more = f" and {len(named) - MAX_LISTED} more" if len(named) > MAX_LISTED else ""
    return (f"{ref!r} matches {len(found)} items: {shown}{more}; name one by its ID prefix")


def _quoted(text: str) -> str:
    return text if text and all(c.isalnum() or c in "-_." for c in text) else repr(text)


def field_value(title: str, values: Mapping[str, str], name: str) -> str:
    """One field's value by name (exact, else case-insensitive); a missing one names the rest."""
    if name in values:
        return values[name]
    folded = [k for k in values if k.casefold() == name.casefold()]
    if len(folded) == 1:
        return values[folded[0]]
    have = ", ".join(sorted(values)) or "none"
    raise ItemNotFoundError(f"{title!r} has no field {name!r} (its fields: {have})")


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 item``, ``2 items``."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
