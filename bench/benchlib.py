"""What every benchmark prints beside its figures: the machine, and its percentiles."""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path


def machine() -> str:
    """Cores, CPU model, Python, OS and load: figures from a shared machine need context."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} cores, {model}, Python {platform.python_version()} "
            f"({platform.python_implementation()}), {platform.system()} {platform.release()}, "
            f"load average {load}")


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100): p99 of few samples is their maximum."""
    ordered = sorted(samples)
    rank = min(len(ordered), max(1, math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]
