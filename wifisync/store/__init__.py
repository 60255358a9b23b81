"""Record stores: SQLite on disk, and an in-memory twin that passes the same contract."""

from __future__ import annotations

from wifisync.store.base import AppendResult, RecordStore
from wifisync.store.memory import MemoryStore
from wifisync.store.sqlite import SqliteStore

__all__ = ["AppendResult", "MemoryStore", "RecordStore", "SqliteStore"]
