"""Start to connected by mDNS alone: two daemons in a private namespace lab (tests/lab.py).

Each run starts both daemons at once with empty address books and no static peers, each
announcing and browsing on its lab interface only, and times from the start until both
hold a session. Real multicast, but only on the lab's own bridge. Needs root and ``ip``
(iproute2); skips with the reason elsewhere.

    .venv/bin/python bench/discovery.py [--runs N]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchlib import machine, make_group, record, wait  # noqa: E402

from tests.lab import Lab, LabProcess, netns_unavailable_reason  # noqa: E402

PORT = 7415


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    reason = netns_unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return
    root = Path(tempfile.mkdtemp(prefix="wifisync-bench-mdns-"))
    times: list[float] = []
    try:
        with Lab(subnet=f"10.231.{random.randint(16, 250)}") as lab:
            nodes = [lab.add_node("a"), lab.add_node("b")]
            group = make_group(root, 2)
            for node, dev in zip(nodes, group, strict=True):
                dev.home.config_file.write_text(
                    f'[daemon]\nlisten = "{node.address}:{PORT}"\nmdns = true\n'
                    f'interfaces = ["{node.iface}"]\nlog_level = "warning"\n')
            for _ in range(args.runs):
                for dev in group:
                    (dev.home.data_dir / "peers.json").unlink(missing_ok=True)
                started = time.perf_counter()
                procs: list[LabProcess] = [
                    lab.spawn(node, dev.cli.argv("daemon"),
                              env=dev.cli.env({"WIFISYNC_PASSWORD": None}))
                    for node, dev in zip(nodes, group, strict=True)]
                wait(lambda: all(d.peers_connected() > 0 for d in group), 30)
                times.append(time.perf_counter() - started)
                for p in procs:
                    p.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    record("start to connected by mDNS only (both daemons started at once)", times, "s",
           note="includes Python start-up and zeroconf probing (~1.2 s by design)")


if __name__ == "__main__":
    main()
