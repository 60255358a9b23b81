"""What every benchmark prints beside its figures: the machine, percentiles, and a verdict.

A bench reports each figure with ``record()``; bench/run.py (``make bench``) collects them
into bench/results/latest.json and latest.md. Any ``bench/*.py`` that records this way is
picked up by the runner; ``full_set()`` tells it whether to add its large sizes.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
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


RESULTS_ENV = "WIFISYNC_BENCH_RESULTS"  # bench/run.py sets it: where figures are collected
SET_ENV = "WIFISYNC_BENCH_SET"  # "quick" (default) or "full" (the large sizes too)


def full_set() -> bool:
    """Whether this run is ``make bench-full``: benches add their large sizes."""
    return os.environ.get(SET_ENV) == "full"


def record(name: str, samples: list[float], unit: str, target: float | None = None,
           higher_is_better: bool = False, note: str = "") -> dict[str, object]:
    """Print one figure (median, p99, runs, target, verdict) and hand it to the report.

    ``samples`` are in ``unit``; ``target`` is the bound the median must stay under (or
    over, when ``higher_is_better``). Under bench/run.py the figure is appended as one JSON
    line to the file named by ``WIFISYNC_BENCH_RESULTS``, samples included for plots.
    """
    median = statistics.median(samples)
    p99 = percentile(samples, 99)
    if target is None:
        verdict = "no target"
    else:
        met = median >= target if higher_is_better else median < target
        verdict = "met" if met else "MISSED"
    figure: dict[str, object] = {
        "bench": Path(sys.argv[0]).name, "name": name, "unit": unit, "median": median,
        "p99": p99, "min": min(samples), "max": max(samples), "runs": len(samples),
        "target": target, "higher_is_better": higher_is_better, "verdict": verdict,
        "note": note, "samples": samples, "machine": machine(),
    }
    bound = "" if target is None else f"  target {'>=' if higher_is_better else '<'} " \
        f"{target:g} {unit}"
    print(f"  {name:<52} median {median:10.3f} {unit:<6} p99 {p99:10.3f}  n={len(samples)}"
          f"{bound}  [{verdict}]{f'  ({note})' if note else ''}", flush=True)
    out = os.environ.get(RESULTS_ENV)
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(figure) + "\n")
    return figure


SYNC_BATCH = 1000  # records per sync batch, fewer than a real 1 MiB batch holds


def marks_as_after_a_sync(store_file: Path, data_dir: Path) -> None:
    """Leave the store's signature marks as this device's daemon leaves them after
    receiving every record by sync: no record mark, one set mark per batch it accepted."""
    import sqlite3

    from wifisync.model.identity import DeviceIdentity
    from wifisync.store import SqliteStore, sigmarks

    db = sqlite3.connect(store_file)
    with db:
        db.execute("DELETE FROM signature_marks")
        db.execute("DELETE FROM signature_sets")
        ids = [bytes(rid) for (rid,) in db.execute("SELECT id FROM records ORDER BY n")]
    db.close()
    key = sigmarks.mark_key(DeviceIdentity.load(data_dir))
    store = SqliteStore(store_file)
    try:
        for i in range(0, len(ids), SYNC_BATCH):
            batch = ids[i:i + SYNC_BATCH]
            assert store.add_signature_set(batch, sigmarks.set_mark(key, batch))
    finally:
        store.close()
