"""Real daemons as a user runs them: initial sync, memory, restart catch-up and idle CPU.

Each device is its own home and its own ``wifisync daemon`` process on 127.0.0.1 (mDNS
off), set up as bench/propagation.py does. Measured:

- initial sync of 10k (and, in the full set, 100k) records from A to a new device B, from
  B's daemon start until B's store holds them all (items/s); peak RSS of each daemon
  during the sync and steady RSS 12 s after it, helper processes included;
- restart catch-up from either side: 15 items written while one daemon was stopped, from
  its restart (process start) until the other side holds them; the dialed side restarts
  with no address for its peer, so only the peer's dialer can bring it back;
- idle: CPU per minute (``/proc/PID/schedstat``, helpers included) and RSS of a daemon
  with two connected peers and 10k items, over 3 windows (60 s each in the full set).

Targets (issue 16, 2 cores): 100k under 4 s, 10k under 0.6 s; receiving daemon under
100 MiB peak and under 70 MiB steady; reconnect under 0.5 s; idle under 6 ms/min.

    .venv/bin/python bench/daemons.py [--sizes 10000 ...] [--idle-window S] [--catchups N]
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchlib import (  # noqa: E402
    Holdings,
    RssWatch,
    cpu_seconds,
    fill_signed,
    full_set,
    machine,
    make_group,
    record,
    seen_of,
    tree_cpu_ns,
    wait,
)

from tests.memory import process_tree, tree_rss_mib  # noqa: E402
from wifisync.client.control import notify_daemon  # noqa: E402
from wifisync.harness import Device  # noqa: E402
from wifisync.model.identity import DeviceIdentity  # noqa: E402
from wifisync.store.sqlite import SqliteStore  # noqa: E402
from wifisync.vault.unlocked import vault_id_of  # noqa: E402

BODY_BYTES = 500
SYNC_TARGETS_S = {10_000: 0.6, 100_000: 4.0}
PEAK_TARGET_MIB = 100.0
STEADY_TARGET_MIB = 70.0
RECONNECT_TARGET_S = 0.5
IDLE_TARGET_MS_PER_MIN = 6.0
CATCHUP_ITEMS = 15
STEADY_AFTER_S = 12.0  # after the sync: the signature helpers exit after 10 s unused


def fill(node: Device, n: int) -> None:
    """``n`` signed item records by ``node`` in its store."""
    store = SqliteStore(node.home.store_file)
    try:
        fill_signed(store, DeviceIdentity.load(node.home.data_dir), vault_id_of(store), n,
                    BODY_BYTES)
    finally:
        store.close()


def initial_sync(root: Path, n: int, runs: int) -> None:
    """A holds ``n`` records; a fresh B starts and pulls them all."""
    times, firsts, peaks_b, peaks_a, steady_b = [], [], [], [], []
    cpu_b, cpu_helpers, cpu_a = [], [], []  # seconds: B's process from its start, its
    # signature helpers, A during the sync (where a sync's time goes on 2 cores)
    for r in range(runs):
        a, b = make_group(root / f"sync{n}-{r}", 2)
        try:
            fill(a, n)
            want = seen_of(a)
            a.start(peers=[], wait=False)
            wait(lambda a=a: a.status() is not None)
            assert a.proc is not None
            watch_a = RssWatch({"a": a.proc.pid})
            a_before = tree_cpu_ns(a.proc.pid)
            with Holdings(b) as b_holds:
                paired = b_holds.seen()  # what pairing handed over
                started = b.start(peers=[a], wait=False)
                assert b.proc is not None
                watch_b = RssWatch({"b": b.proc.pid})
                deadline = time.monotonic() + 120
                first = None
                while not b_holds.holds(want):
                    if time.monotonic() > deadline or b.proc.poll() is not None:
                        raise SystemExit(f"B did not receive {n} records in 120 s")
                    if first is None and b_holds.seen() != paired:
                        first = time.perf_counter() - started
                    time.sleep(0.005)
                times.append(time.perf_counter() - started)
            main_s = cpu_seconds(b.proc.pid)
            cpu_b.append(main_s)
            cpu_helpers.append(max(0.0, tree_cpu_ns(b.proc.pid) / 1e9 - main_s))
            cpu_a.append((tree_cpu_ns(a.proc.pid) - a_before) / 1e9)
            firsts.append(first if first is not None else times[-1])
            time.sleep(STEADY_AFTER_S)
            steady_b.append(tree_rss_mib(b.proc.pid))
            peaks_b.append(watch_b.stop()["b"])
            peaks_a.append(watch_a.stop()["a"])
        finally:
            a.stop()
            b.stop()
            shutil.rmtree(root / f"sync{n}-{r}", ignore_errors=True)
    med = sorted(times)[len(times) // 2]
    record(f"initial sync {n} records, two daemons (B's start to all held)", times, "s",
           SYNC_TARGETS_S.get(n), note=f"{n / med:,.0f} records/s")
    record(f"  of which B's start until its first record is stored ({n} records)", firsts,
           "s", note="process start, imports, TLS and the handshake: the rest is the sync")
    record(f"receiving daemon peak RSS during a {n} sync (helpers incl.)", peaks_b, "MiB",
           PEAK_TARGET_MIB)
    record(f"receiving daemon RSS {STEADY_AFTER_S:.0f} s after a {n} sync (helpers incl.)",
           steady_b, "MiB", STEADY_TARGET_MIB)
    record(f"sending daemon peak RSS during a {n} sync (helpers incl.)", peaks_a, "MiB")
    record(f"receiving daemon CPU for a {n} sync, its own process (from its start)", cpu_b,
           "s", note="the loop and the store thread share one GIL: the critical path")
    record(f"  its signature helpers ({n} records)", cpu_helpers, "s")
    record(f"sending daemon CPU during a {n} sync (helpers incl.)", cpu_a, "s")


def write_items(node: Device, n: int) -> None:
    """``n`` records by ``node`` in its store, then the CLI's notify if its daemon runs."""
    fill(node, n)
    if node.proc is not None:
        notify_daemon(node.home)


def catch_up(root: Path, runs: int) -> None:
    """Items written while one side was down reach the other after its restart."""
    a, b = make_group(root / "catchup", 2)
    dialed: list[float] = []
    dialer: list[float] = []
    try:
        a.start(peers=[], wait=False)
        wait(lambda: a.status() is not None)
        b.start(peers=[a], wait=False)  # only B knows where A is
        wait(lambda: a.peers_connected() == 1)
        for _ in range(runs):
            # The dialed side restarts, with no address for its peer; it wrote while down.
            a.stop()
            (a.home.data_dir / "peers.json").unlink(missing_ok=True)
            write_items(a, CATCHUP_ITEMS)
            want = seen_of(a)
            time.sleep(2.0)
            with Holdings(b) as b_holds:
                started = a.start(peers=[], wait=False)
                wait(functools.partial(b_holds.holds, want), 30)
                dialed.append(time.perf_counter() - started)
            wait(lambda: b.peers_connected() == 1)
            # The dialing side restarts; the other side wrote while it was down.
            b.stop()
            write_items(a, CATCHUP_ITEMS)
            want = seen_of(a)
            time.sleep(2.0)
            with Holdings(b) as b_holds:
                started = b.start(peers=[a], wait=False)
                wait(functools.partial(b_holds.holds, want), 30)
                dialer.append(time.perf_counter() - started)
            wait(lambda: a.peers_connected() == 1)
    finally:
        a.stop()
        b.stop()
    record(f"catch-up of {CATCHUP_ITEMS} items, dialed side restarted (process start to "
           "held)", dialed, "s", None, note="includes Python start-up")
    record(f"catch-up of {CATCHUP_ITEMS} items, dialing side restarted (process start to "
           "held)", dialer, "s", None, note="includes Python start-up")
    reconnect(root, runs)


def reconnect(root: Path, runs: int) -> None:
    """From a restarted daemon answering on its socket until its peer is connected."""
    a, b = make_group(root / "reconnect", 2)
    dialed, dialer = [], []
    try:
        a.start(peers=[], wait=False)
        wait(lambda: a.status() is not None)
        b.start(peers=[a], wait=False)
        wait(lambda: a.peers_connected() == 1)
        for _ in range(runs):
            a.stop()
            (a.home.data_dir / "peers.json").unlink(missing_ok=True)
            time.sleep(3.0)
            a.start(peers=[], wait=False)
            wait(lambda: a.status() is not None)
            t = time.perf_counter()
            wait(lambda: a.peers_connected() == 1)
            dialed.append(time.perf_counter() - t)
            b.stop()
            time.sleep(3.0)
            b.start(peers=[a], wait=False)
            wait(lambda: b.status() is not None)
            t = time.perf_counter()
            wait(lambda: b.peers_connected() == 1)
            dialer.append(time.perf_counter() - t)
    finally:
        a.stop()
        b.stop()
    record("reconnect after the dialed side restarts (listening to connected)", dialed, "s",
           RECONNECT_TARGET_S)
    record("reconnect after the dialing side restarts (listening to connected)", dialer, "s",
           RECONNECT_TARGET_S)


def idle(root: Path, items: int, window: float, windows: int) -> None:
    """A daemon with two connected peers and ``items`` records, doing nothing."""
    a, b, c = make_group(root / "idle", 3)
    try:
        fill(a, items)
        a.start(peers=[], wait=False)
        wait(lambda: a.status() is not None)
        b.start(peers=[a], wait=False)
        c.start(peers=[a], wait=False)
        want = a.record_count()
        wait(lambda: a.peers_connected() == 2 and b.record_count() >= want
             and c.record_count() >= want, 120)
        time.sleep(5.0)  # let the initial sessions settle
        assert a.proc is not None
        pid = a.proc.pid
        # helpers exit once idle; one exiting inside a window would take its CPU out of the
        # sum (tree_cpu_ns counts live processes), so the windows start once none is left
        wait(lambda: process_tree(pid) == [pid], 60)
        per_min, rss = [], []
        for _ in range(windows):
            before = tree_cpu_ns(a.proc.pid)
            time.sleep(window)
            per_min.append((tree_cpu_ns(a.proc.pid) - before) / 1e6 * 60 / window)
            rss.append(tree_rss_mib(a.proc.pid))
    finally:
        for node in (a, b, c):
            node.stop()
    record(f"idle CPU, 2 peers connected, {items} records ({window:.0f} s windows)", per_min,
           "ms/min", IDLE_TARGET_MS_PER_MIN)
    record(f"idle RSS, 2 peers connected, {items} records", rss, "MiB", STEADY_TARGET_MIB)


def main() -> None:
    full = full_set()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[10_000, 100_000] if full else [10_000])
    parser.add_argument("--runs", type=int, default=3, help="initial syncs per size")
    parser.add_argument("--catchups", type=int, default=5 if full else 3,
                        help="restarts of each side (0: no catch-up or reconnect figures)")
    parser.add_argument("--idle-window", type=float, default=60.0 if full else 15.0)
    parser.add_argument("--idle-windows", type=int, default=3, help="0: no idle figures")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    root = Path(tempfile.mkdtemp(prefix="wifisync-bench-"))
    try:
        for n in args.sizes:
            initial_sync(root, n, args.runs if n <= 10_000 else max(1, args.runs - 1))
        if args.catchups:
            catch_up(root, args.catchups)
        if args.idle_windows:
            idle(root, 10_000, args.idle_window, args.idle_windows)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
