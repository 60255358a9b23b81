"""The mass-deletion brake: many deletes in a short time on one device wait for a confirm.

A slip (``rm`` in a loop over the wrong list) or a hostile script on one device must not
empty every device of the household within a second. Once this device has deleted more
than ``share`` of the vault's items, and at least ``items`` of them, within ``window``
seconds, further deletes are not written: they are held in the store's meta table (item
IDs, nothing secret) until ``wifisync confirm-deletes`` writes them (or ``--drop`` forgets
them). Nothing is signed, so nothing syncs, before the user says so.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from wifisync.store.sqlite import SqliteStore

RECENT_KEY = "delete_brake.recent"  # JSON list of the times (s) of this device's recent deletes
HELD_KEY = "delete_brake.held"  # JSON list of item IDs (hex) whose delete waits for a confirm


@dataclass(frozen=True, slots=True)
class BrakeRule:
    """When deletes are held: more than ``share`` of the items and at least ``items`` of
    them deleted within ``window`` seconds on this device."""

    share: float = 0.2
    items: int = 10
    window: float = 60.0


def live_items(store: SqliteStore) -> int:
    """Items with at least one version that is not a tombstone (headers read, never bodies)."""
    return store.count_live_items()


def _load(store: SqliteStore, key: str) -> list[Any]:
    raw = store.get_meta(key)
    if not raw:
        return []
    value = json.loads(raw)
    return value if isinstance(value, list) else []


def held(store: SqliteStore) -> list[bytes]:
    """Items whose delete waits for ``confirm-deletes``."""
    return [bytes.fromhex(str(x)) for x in _load(store, HELD_KEY)]


def should_hold(store: SqliteStore, rule: BrakeRule, now: float | None = None) -> bool:
    """Whether one more delete now must be held (and record it as a recent delete if not)."""
    now = time.time() if now is None else now
    recent = [float(t) for t in _load(store, RECENT_KEY) if now - float(t) < rule.window]
    if held(store):
        return True  # once braking, every delete waits until the user decides
    if len(recent) + 1 >= rule.items:
        total = live_items(store) + len(recent)  # the vault as it was when the burst began
        if len(recent) + 1 > rule.share * total:
            return True
    recent.append(now)
    store.set_meta(RECENT_KEY, json.dumps(recent).encode())
    return False


def hold(store: SqliteStore, item: bytes) -> int:
    """Hold the delete of ``item``; returns how many deletes are held now."""
    items = [x.hex() for x in held(store)]
    if item.hex() not in items:
        items.append(item.hex())
    store.set_meta(HELD_KEY, json.dumps(items).encode())
    return len(items)


def release(store: SqliteStore) -> list[bytes]:
    """Forget the held deletes and the recent ones (confirmed or dropped); returns the held."""
    items = held(store)
    store.set_meta(HELD_KEY, b"[]")
    store.set_meta(RECENT_KEY, b"[]")
    return items


class DeleteWatch:
    """On a receiving daemon: one log line per author when it deletes many items at once."""

    def __init__(self, rule: BrakeRule) -> None:
        self.rule = rule
        self._bursts: dict[bytes, tuple[float, int]] = {}  # author -> (burst start, deletes)

    def seen(self, author: bytes, deletes: int, now: float) -> int | None:
        """Count ``deletes`` by ``author``; the burst's size the first time it is large."""
        start, count = self._bursts.get(author, (now, 0))
        if now - start >= self.rule.window:
            start, count = now, 0
        before, count = count, count + deletes
        self._bursts[author] = (start, count)
        return count if before < self.rule.items <= count else None
