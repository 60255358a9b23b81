"""Version vectors (device ID -> counter) and the multi-value-register rule built on them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

VersionVector = Mapping[bytes, int]


def dominates(a: VersionVector, b: VersionVector) -> bool:
    """True when ``a`` has seen everything ``b`` has (a >= b pointwise)."""
    return all(a.get(k, 0) >= v for k, v in b.items())


def join(vectors: Iterable[VersionVector]) -> dict[bytes, int]:
    """Pointwise maximum of several vectors."""
    out: dict[bytes, int] = {}
    for vv in vectors:
        for k, v in vv.items():
            if v > out.get(k, 0):
                out[k] = v
    return out


def maximal(held: Iterable[VersionVector], incoming: VersionVector) -> tuple[bool, list[int]]:
    """Apply the MVR rule: whether ``incoming`` is kept, and indexes of held versions it drops.

    A held version that dominates or equals ``incoming`` makes it obsolete; otherwise it is
    kept and every held version it dominates is dropped.
    """
    held = list(held)
    if any(dominates(h, incoming) for h in held):
        return False, []
    return True, [i for i, h in enumerate(held) if dominates(incoming, h)]
