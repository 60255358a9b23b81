"""What every benchmark shares: the machine, percentiles and verdicts; devices and processes.

A bench reports each figure with ``record()``; bench/run.py (``make bench``) collects them
into bench/results/latest.json and latest.md. Any ``bench/*.py`` that records this way is
picked up by the runner; ``full_set()`` tells it whether to add its large sizes. Devices and
their daemons come from the one harness (``wifisync/harness.py``, shared with the tests and
the demo); the memory and CPU of a daemon and its helper processes are read from /proc here.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.memory import process_tree, tree_rss_mib
from wifisync.cli.main import tune_gc
from wifisync.harness import Cli, Device, found_vault, join_by_library, wait_for
from wifisync.model.crypto import KdfParams
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Kind, RecordHeader, sign_record, sign_records
from wifisync.store.sqlite import SqliteStore

# What a bench times in its own process (a sync between two stores, a vault listed) runs
# with the garbage collector tuned as every wifisync process tunes it at start, the daemon
# included: with Python's defaults a 100k sync here spent 0.26 s in collections that the
# daemon never makes.
tune_gc()


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


def speed_reference() -> float:
    """Milliseconds a fixed pure-Python loop takes here (median of 7): a VM's speed drifts
    within the hour, and this says which phase a report's figures came from."""
    times = []
    for _ in range(7):
        t = time.perf_counter()
        sum(range(10**6))
        times.append((time.perf_counter() - t) * 1000)
    return sorted(times)[3]


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


# --- devices: the harness with the benches' defaults ------------------------------------

PASSWORD = "bench password"
GROUP_KDF = KdfParams.fresh(1, 64 * 2**20)  # the cheapest key derivation the CLI accepts


def bench_device(root: Path, name: str) -> Device:
    """A device for a bench: its home under ``root``, its daemon logging warnings only."""
    device = Device(Cli(root / name, PASSWORD), name)
    device.configure(log_level="warning")
    return device


def make_group(root: Path, n: int, kdf: KdfParams = GROUP_KDF) -> list[Device]:
    """``n`` devices sharing one vault, built with the library (as pairing leaves them)."""
    nodes = [bench_device(root, f"dev{i}") for i in range(n)]
    found_vault(nodes[0], PASSWORD, kdf)
    join_by_library(nodes[0], *nodes[1:])
    return nodes


def fill_signed(store: SqliteStore, identity: DeviceIdentity, vault_id: bytes, n: int,
                body_bytes: int = 500, chunk: int = 5000, alone: bool = False) -> None:
    """Append ``n`` ITEM records signed by ``identity`` with random bodies (daemons and the
    sync core never decrypt: they check headers and signatures), ``chunk`` per transaction,
    signed together as an import signs them (``alone``: each signed by itself, as records
    typed one at a time are)."""
    me = identity.device_id
    seq = store.next_seq(me)
    made = 0
    while made < n:
        parts = []
        for _ in range(min(chunk, n - made)):
            header = RecordHeader(vault_id, uuid.uuid4().bytes, Kind.ITEM, me, seq, {me: seq},
                                  time.time_ns() // 1_000_000 << 16, False)
            parts.append((header, os.urandom(body_bytes)))
            seq += 1
        store.append_many([sign_record(identity, *p) for p in parts] if alone
                          else sign_records(identity, parts))
        made += len(parts)


def clean_up(root: Path, devices: Sequence[Device]) -> None:
    """Stop every daemon still running (SIGTERM, then wait) and remove the bench's folder."""
    for device in devices:
        device.stop()
    shutil.rmtree(root, ignore_errors=True)


def wait(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    """Poll every 5 ms until true (a figure's end is seen within 5 ms)."""
    wait_for(predicate, timeout, "the daemons", interval=0.005)


class Holdings:
    """Watches whether a device's store holds what another held, at one small query a look.

    A timed wait must not take the CPU the daemons it times need: opening a store and
    counting its records at every poll took 2-5 ms, 5 ms apart, on a 2-core machine. One
    connection kept open reads the ``seen`` vector (a page), which the store raises in the
    transaction that stores the records.
    """

    def __init__(self, target: Device) -> None:
        self._store = SqliteStore(target.home.store_file)

    def __enter__(self) -> Holdings:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._store.close()

    def seen(self) -> dict[bytes, int]:
        """The target's seen vector now."""
        return self._store.seen()

    def holds(self, wanted: dict[bytes, int]) -> bool:
        """Whether the target holds every record of the seen vector ``wanted``."""
        seen = self._store.seen()
        return all(seen.get(origin, 0) >= top for origin, top in wanted.items())


def seen_of(device: Device) -> dict[bytes, int]:
    """A device's seen vector: every record it holds, as a vector."""
    store = SqliteStore(device.home.store_file)
    try:
        return store.seen()
    finally:
        store.close()


# --- processes: memory and CPU from /proc (Linux) ---------------------------------------


def tree_cpu_ns(pid: int) -> int:
    """Nanoseconds on CPU of ``pid``'s threads and its descendants (schedstat, live ones)."""
    total = 0
    for p in process_tree(pid):
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                total += int(Path(f"/proc/{p}/task/{task}/schedstat").read_text().split()[0])
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """Seconds of CPU (user + system, every thread) one process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssWatch:
    """Samples the RSS of some process trees every 20 ms in a thread; keeps the peaks."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], tree_rss_mib(pid))

    def stop(self) -> dict[str, float]:
        """Stop sampling; the peaks in MiB."""
        self._stop.set()
        self._thread.join()
        return self.peak
