"""How fast a change reaches the other devices: real daemons on 127.0.0.1, one home each.

Measures, with two daemons, from the commit of a change on A (a library write in this
process, then the same control-socket notify the CLI sends) until B's store holds it;
with three daemons in a line (C dials B, B dials A), A to C through B; and the time
from starting a daemon until its session with a known running peer is up.

    .venv/bin/python bench/propagation.py [--changes 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchlib import PASSWORD, clean_up, machine, make_group, record, wait  # noqa: E402

from wifisync.client.control import notify_daemon  # noqa: E402
from wifisync.harness import Device  # noqa: E402
from wifisync.model.identity import DeviceIdentity  # noqa: E402
from wifisync.store.sqlite import SqliteStore  # noqa: E402
from wifisync.vault.unlocked import Vault  # noqa: E402


def propagation(source: Device, target: Device, changes: int) -> list[float]:
    """Seconds from A's commit until the target's store holds the change, per change."""
    store = SqliteStore(source.home.store_file)
    vault = Vault.unlock(store, DeviceIdentity.load(source.home.data_dir), PASSWORD)
    watch = SqliteStore(target.home.store_file)
    out = []
    for i in range(changes):
        item = vault.add(f"bench item {i}", fields={"password": "p" * 40})
        committed = time.perf_counter()
        notify_daemon(source.home)
        while not watch.heads(item):
            time.sleep(0.00005)
        out.append(time.perf_counter() - committed)
        time.sleep(0.005)
    store.close()
    watch.close()
    return out


def summary(name: str, seconds: list[float], target_ms: float | None = None) -> None:
    """One figure in milliseconds: median, p99, runs, target."""
    record(name, [s * 1000 for s in seconds], "ms", target_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    root = Path(tempfile.mkdtemp(prefix="wifisync-bench-"))
    nodes: list[Device] = []
    try:
        nodes = make_group(root, 3)
        a, b, c = nodes
        a.start(peers=[], wait=False)
        wait(lambda: a.peers_connected() == 0 and a.status() is not None)
        b.start(peers=[a], wait=False)
        wait(lambda: a.peers_connected() == 1)
        summary("A -> B, commit until in B's store", propagation(a, b, args.changes), 1.5)

        c.start(peers=[b], wait=False)
        wait(lambda: b.peers_connected() == 2)
        summary("A -> C through B, commit until in C's store", propagation(a, c, args.changes),
                3.0)

        starts = []
        for _ in range(args.starts):
            c.stop()
            wait(lambda: b.peers_connected() == 1)
            started = c.start(peers=[b], wait=False)
            wait(lambda: c.peers_connected() == 1)
            starts.append(time.perf_counter() - started)
        summary("daemon start until session with peer is up", starts)
    finally:
        clean_up(root, nodes)


if __name__ == "__main__":
    main()
