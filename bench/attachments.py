"""Attachments across two real daemons on 127.0.0.1: how fast, and in how little memory.

1. A 20 MiB file (new random bytes each run, so nothing is deduplicated) is attached on A
   with the real CLI while both daemons run and are connected; measured from the start of
   ``wifisync attach`` until B's store holds every chunk and the item version. Target:
   median of 5 under 1 s.
2. Peak RSS growth while a 64 MiB file is attached on A (the CLI), synced (both daemons)
   and read back on B (``wifisync get -o``). Daemons: peak reset through
   ``/proc/PID/clear_refs`` just before, growth = peak after - RSS at the reset. CLI
   processes: their peak RSS (the key derivation's own left out, see tests/memory.py)
   less that of the same command on a 1-byte file. Target:
   under 16 MiB in every process.

    .venv/bin/python bench/attachments.py [--runs 5] [--size-mib 20] [--memory-mib 64]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchlib import machine, percentile, record  # noqa: E402
from propagation import PASSWORD, Node, wait  # noqa: E402

from tests.memory import cli_peak_kib  # noqa: E402
from wifisync.client.control import daemon_status  # noqa: E402
from wifisync.home import Home  # noqa: E402
from wifisync.model.chunks import chunk_count  # noqa: E402
from wifisync.model.crypto import KdfParams  # noqa: E402
from wifisync.model.identity import DeviceIdentity  # noqa: E402
from wifisync.model.records import Kind, Membership  # noqa: E402
from wifisync.store.sqlite import SqliteStore  # noqa: E402
from wifisync.vault.unlocked import META_VAULT_ID, Vault  # noqa: E402

TARGET_SECONDS = 1.0
TARGET_RSS_MIB = 16.0
MIB = 1024 * 1024
# The cheapest key derivation the CLI accepts; its own 64 MiB peak is left out of the CLI
# figures (tests/memory.py), since every command that unlocks has it.
BENCH_KDF = KdfParams.fresh(1)


def make_pair(root: Path) -> tuple[Node, Node, str]:
    """Two devices of one vault (as pairing leaves them) and an item on A to attach to."""
    a, b = Node(root, "a"), Node(root, "b")
    ident = DeviceIdentity.generate()
    ident.save(a.home.data_dir)
    store = SqliteStore(a.home.store_file)
    vault = Vault.create(store, ident, "a", PASSWORD, BENCH_KDF)
    other = DeviceIdentity.generate()
    other.save(b.home.data_dir)
    vault.write_member(Membership(other.cert_der, "b"))
    item = vault.add("passport scan", fields={"number": "X1234567"})
    target = SqliteStore(b.home.store_file)
    target.set_meta(META_VAULT_ID, vault.vault_id)
    for kind in (Kind.MEMBER, Kind.VAULT_KEY):
        for key, _held in store.heads_of_kind(kind):
            for rec in store.versions(key):
                target.append(rec)
    target.close()
    store.close()
    return a, b, item.hex()


def cli(home: Home, *args: str) -> list[str]:
    """The argv of one CLI call on ``home``."""
    return [sys.executable, "-m", "wifisync.cli.main", "--home",
            str(home.config_dir.parent), *args]


def env() -> dict[str, str]:
    """The CLI's environment: this checkout, the bench password."""
    return dict(os.environ, PYTHONPATH=str(REPO), WIFISYNC_PASSWORD=PASSWORD)


def run_cli(argv: list[str]) -> int:
    """Run a CLI call to completion; returns its own peak RSS in KiB (tests/memory.py)."""
    return cli_peak_kib(argv[3:], env())


def random_file(path: Path, size: int) -> None:
    """``size`` fresh random bytes."""
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n


def transfer_seconds(a: Node, b: Node, item: str, path: Path, size: int
                     ) -> tuple[float, float]:
    """From the start of ``attach`` on A until B's store holds all chunks and the version;
    and until the ``attach`` command itself returned."""
    watch = SqliteStore(b.home.store_file)
    want = watch.count_records() + chunk_count(size) + 1
    started = time.perf_counter()
    proc = subprocess.Popen(cli(a.home, "attach", item, str(path)), env=env(),
                            stderr=subprocess.PIPE)
    deadline = started + 60
    cli_done = 0.0
    while watch.count_records() < want:
        if time.perf_counter() > deadline:
            raise SystemExit("timed out waiting for B's store")
        if not cli_done and proc.poll() is not None:
            cli_done = time.perf_counter() - started
        time.sleep(0.002)
    took = time.perf_counter() - started
    if proc.wait(30) != 0:
        assert proc.stderr is not None
        raise SystemExit(f"attach failed: {proc.stderr.read().decode()}")
    watch.close()
    return took, cli_done or time.perf_counter() - started


def rss_kib(pid: int, key: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/PID/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise SystemExit(f"no {key} for process {pid}")


def reset_peak(pid: int) -> int:
    """Reset a process's peak RSS (Linux ``clear_refs`` 5); returns its RSS now, in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return rss_kib(pid, "VmRSS")


def memory(a: Node, b: Node, item: str, root: Path, size: int) -> dict[str, float]:
    """Peak RSS growth in MiB of each process while ``size`` bytes are attached, synced and read."""
    tiny, big = root / "tiny.bin", root / "big.bin"
    random_file(tiny, 1)
    random_file(big, size)
    base_attach = run_cli(cli(a.home, "attach", item, str(tiny)))
    wait(lambda: count(b) == count(a), 30)
    base_get = run_cli(cli(b.home, "get", item, "--attachment", "tiny.bin",
                           "-o", str(root / "tiny.out"), "--force"))
    assert a.proc is not None and b.proc is not None
    daemons = {"daemon A (sender)": a.proc.pid, "daemon B (receiver)": b.proc.pid}
    at_reset = {name: reset_peak(pid) for name, pid in daemons.items()}
    peak_attach = run_cli(cli(a.home, "attach", item, str(big)))
    wait(lambda: count(b) == count(a), 120)
    peak_get = run_cli(cli(b.home, "get", item, "--attachment", "big.bin",
                           "-o", str(root / "big.out"), "--force"))
    if not filecmp_equal(big, root / "big.out"):
        raise SystemExit("the attachment read back on B differs from the file attached on A")
    out = {name: (rss_kib(pid, "VmHWM") - at_reset[name]) / 1024
           for name, pid in daemons.items()}
    out["CLI attach on A"] = (peak_attach - base_attach) / 1024
    out["CLI get -o on B"] = (peak_get - base_get) / 1024
    print(f"CLI peak RSS, 1 byte / {size // MIB} MiB: attach {base_attach // 1024} / "
          f"{peak_attach // 1024} MiB, get {base_get // 1024} / {peak_get // 1024} MiB")
    return out


def filecmp_equal(x: Path, y: Path) -> bool:
    """Byte-for-byte comparison, a block at a time."""
    with x.open("rb") as f, y.open("rb") as g:
        while True:
            p, q = f.read(MIB), g.read(MIB)
            if p != q:
                return False
            if not p:
                return True


def count(node: Node) -> int:
    """Records in a node's store."""
    store = SqliteStore(node.home.store_file)
    try:
        return store.count_records()
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=20)
    parser.add_argument("--memory-mib", type=int, default=64)
    args = parser.parse_args()
    print(machine())
    root = Path(tempfile.mkdtemp(prefix="wifisync-bench-"))
    nodes: list[Node] = []
    try:
        a, b, item = make_pair(root)
        nodes = [a, b]
        a.start([])
        wait(lambda: daemon_status(a.home) is not None)
        b.start([a])
        wait(lambda: a.peers_connected() == 1 and b.peers_connected() == 1)
        size = args.size_mib * MIB
        seconds, commands = [], []
        for i in range(args.runs):
            path = root / f"file{i}.bin"
            random_file(path, size)
            took, command = transfer_seconds(a, b, item, path, size)
            seconds.append(took)
            commands.append(command)
            path.unlink()
        ms = sorted(s * 1000 for s in seconds)
        med = statistics.median(seconds)
        print(f"{args.size_mib} MiB attach on A until complete in B's store   n={len(ms)}  "
              f"p50 {med * 1000:7.1f} ms   p99 {percentile(ms, 99):7.1f} ms   "
              f"({args.size_mib / med:.0f} MiB/s)")
        print(f"  (the attach command itself, start-up and unlock included, returned after "
              f"{statistics.median(commands) * 1000:.0f} ms median)")
        print(f"verdict: {'PASS' if med < TARGET_SECONDS else 'FAIL'} "
              f"(target: median under {TARGET_SECONDS:.0f} s)")
        record(f"{args.size_mib} MiB attachment, attach on A until in B's store", seconds,
               "s", TARGET_SECONDS)

        growth = memory(a, b, item, root, args.memory_mib * MIB)
        for name, mib in growth.items():
            print(f"peak RSS growth, {args.memory_mib} MiB attachment, {name:<22} "
                  f"{mib:6.1f} MiB")
        for name, mib in growth.items():
            record(f"peak RSS growth, {args.memory_mib} MiB attachment, {name}", [mib], "MiB",
                   TARGET_RSS_MIB)
        worst = max(growth.values())
        print(f"verdict: {'PASS' if worst < TARGET_RSS_MIB else 'FAIL'} "
              f"(target: under {TARGET_RSS_MIB:.0f} MiB in every process; worst {worst:.1f})")
    finally:
        for node in nodes:
            node.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
