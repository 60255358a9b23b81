"""Hybrid logical clock: wall-clock milliseconds that never run backwards across devices."""

from __future__ import annotations

from dataclasses import dataclass

COUNTER_BITS = 16
COUNTER_MASK = (1 << COUNTER_BITS) - 1


def hlc_pack(wall_ms: int, counter: int) -> int:
    """Pack a (milliseconds, counter) pair into one sortable integer."""
    return (wall_ms << COUNTER_BITS) | counter


def hlc_wall_ms(t: int) -> int:
    """The wall-clock milliseconds part of a packed time."""
    return t >> COUNTER_BITS


@dataclass(slots=True)
class HybridClock:
    """Issues times greater than every time this device has issued or observed."""

    last: int = 0

    def now(self, wall_ms: int) -> int:
        """A new time for a local event; ``wall_ms`` is passed in, never read here."""
        candidate = hlc_pack(wall_ms, 0)
        self.last = candidate if candidate > self.last else self.last + 1
        return self.last

    def observe(self, t: int) -> None:
        """Take note of a time seen in a received record."""
        if t > self.last:
            self.last = t
