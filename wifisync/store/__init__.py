"""Record stores: SQLite on disk, and an in-memory twin that passes the same contract."""

from __future__ import annotations

from .base import AppendResult, RecordStore
from .memory import MemoryStore
from .sqlite import SqliteStore

__all__ = ["AppendResult", "MemoryStore", "RecordStore", "SqliteStore"]
