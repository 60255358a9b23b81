"""How fast a change reaches the other devices: real daemons on 127.0.0.1, one home each.

Measures, with two daemons, from the commit of a change on A (a library write in this
process, then the same control-socket notify the CLI sends) until B's store holds it;
with three daemons in a line (C dials B, B dials A), A to C through B; and the time
from starting a daemon until its session with a known running peer is up.

    .venv/bin/python bench/propagation.py [--changes 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchlib import machine, record  # noqa: E402

from wifisync.client.control import daemon_status, notify_daemon  # noqa: E402
from wifisync.home import Home  # noqa: E402
from wifisync.model.crypto import KdfParams  # noqa: E402
from wifisync.model.identity import DeviceIdentity  # noqa: E402
from wifisync.model.records import Kind, Membership  # noqa: E402
from wifisync.store.sqlite import SqliteStore  # noqa: E402
from wifisync.vault.unlocked import META_VAULT_ID, Vault  # noqa: E402

PASSWORD = "bench password"


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Node:
    """One device: a home, a port, a daemon process."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.home = Home.locate(str(root / name))
        self.home.ensure()
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.home.config_file.write_text(
            f'[daemon]\nlisten = "127.0.0.1:{self.port}"\nmdns = false\n'
            'log_level = "warning"\n')

    @property
    def address(self) -> str:
        """Where the daemon listens."""
        return f"127.0.0.1:{self.port}"

    def start(self, peers: list[Node]) -> float:
        """Start the daemon; returns the time it was started (perf_counter)."""
        home = str(self.home.config_dir.parent)
        argv = [sys.executable, "-m", "wifisync.cli.main", "--home", home, "daemon",
                *[a for p in peers for a in ("--peer", p.address)]]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        started = time.perf_counter()
        self.proc = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
        return started

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None

    def peers_connected(self) -> int:
        """How many sessions the daemon holds (0 when it does not answer yet)."""
        try:
            live = daemon_status(self.home)
        except Exception:
            return 0
        return len(live["peers"]) if live else 0


def make_group(root: Path, n: int) -> list[Node]:
    """``n`` devices sharing one vault, built with the library (as pairing leaves them)."""
    nodes = [Node(root, f"dev{i}") for i in range(n)]
    first = nodes[0]
    ident = DeviceIdentity.generate()
    ident.save(first.home.data_dir)
    store = SqliteStore(first.home.store_file)
    vault = Vault.create(store, ident, first.name, PASSWORD, KdfParams.fresh(1, 64 * 2**20))
    for node in nodes[1:]:
        other = DeviceIdentity.generate()
        other.save(node.home.data_dir)
        vault.write_member(Membership(other.cert_der, node.name))
    for node in nodes[1:]:
        target = SqliteStore(node.home.store_file)
        target.set_meta(META_VAULT_ID, vault.vault_id)
        for kind in (Kind.MEMBER, Kind.VAULT_KEY):
            for item, _held in store.heads_of_kind(kind):
                for rec in store.versions(item):
                    target.append(rec)
        target.close()
    store.close()
    return nodes


def wait(predicate: object, timeout: float = 15.0) -> None:
    """Poll until true."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the daemons")
        time.sleep(0.005)


def propagation(source: Node, target: Node, changes: int) -> list[float]:
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
    nodes: list[Node] = []
    try:
        nodes = make_group(root, 3)
        a, b, c = nodes
        a.start([])
        wait(lambda: a.peers_connected() == 0 and daemon_status(a.home) is not None)
        b.start([a])
        wait(lambda: a.peers_connected() == 1)
        summary("A -> B, commit until in B's store", propagation(a, b, args.changes), 1.5)

        c.start([b])
        wait(lambda: b.peers_connected() == 2)
        summary("A -> C through B, commit until in C's store", propagation(a, c, args.changes),
                3.0)

        starts = []
        for _ in range(args.starts):
            c.stop()
            wait(lambda: b.peers_connected() == 1)
            started = c.start([b])
            wait(lambda: c.peers_connected() == 1)
            starts.append(time.perf_counter() - started)
        summary("daemon start until session with peer is up", starts)
    finally:
        for node in nodes:
            node.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
