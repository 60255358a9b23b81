"""The system clock, read in one place: the sync core is handed this function, never reads time."""

from __future__ import annotations

import time


def wall_ms() -> int:
    """Milliseconds since the epoch from the system clock."""
    return time.time_ns() // 1_000_000
