"""The CLI at scale, as whole processes: wall time and peak RSS of list, show, get and status.

Builds a vault of 10k items (and 100k in the full set) with the library, then runs real
``wifisync`` processes (Python start-up, unlock with the vault's Argon2id cost, and
output included; the master password on stdin). The first ``list`` runs with no
signature marks (as after a restore), then with the marks this device's daemon leaves
when it receives every record by sync. ``get`` is timed when the CLI
has it.

Targets (issue 16): first list after a sync under 0.8 s at 10k; list at 100k under
120 MiB peak; show/get by prefix or title under 300 ms at 10k; status --json under 300 ms
at 100k.

    .venv/bin/python bench/cli.py [--sizes 10000 ...] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchlib import full_set, machine, marks_as_after_a_sync, record  # noqa: E402

from wifisync.home import Home  # noqa: E402
from wifisync.model import crypto  # noqa: E402
from wifisync.model.identity import DeviceIdentity  # noqa: E402
from wifisync.store import SqliteStore  # noqa: E402
from wifisync.vault.unlocked import Vault  # noqa: E402

PASSWORD = "bench master password"
KDF = crypto.KdfParams.fresh(2, 64 * 2**20)  # what `init` uses, give or take
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")  # Debian: apt-get install time


def build(root: Path, items: int) -> list[bytes]:
    """A home with a vault of ``items`` login items; their IDs."""
    home = Home.locate(str(root))
    home.ensure()
    identity = DeviceIdentity.generate()
    identity.save(home.data_dir)
    store = SqliteStore(home.store_file)
    vault = Vault.create(store, identity, "bench", PASSWORD, KDF)
    ids: list[bytes] = []
    for start in range(0, items, 5000):
        with store.transaction():
            for n in range(start, min(items, start + 5000)):
                ids.append(vault.add(
                    f"Site {n:06d}", "login",
                    {"username": f"user{n}@example.org",
                     "password": crypto.random_bytes(12).hex(),
                     "url": f"https://site{n}.example.org/login"}, tags=["bench"]))
    store.close()
    return ids


def run(root: Path, *argv: str) -> tuple[float, float]:
    """One ``wifisync`` process: (wall seconds, peak RSS MiB).

    The peak comes from GNU time (``%M``), which forks from a small process: Linux
    carries the forking process's high-water mark into the child, so ``wait4`` from
    this bench (which holds a whole vault in memory) would report this bench's size.
    """
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("WIFISYNC_PASSWORD", None)
    # As installed: pip compiles the bytecode, so the first run here writes it and the
    # others load it (without this, a CI-style environment recompiles on every run).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmd = [sys.executable, "-m", "wifisync.cli.main", "--home", str(root), "--password-stdin",
           *argv]
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        if GNU_TIME:
            cmd = [GNU_TIME, "-f", "%M", "-o", rss.name, *cmd]
        t = time.perf_counter()
        done = subprocess.run(cmd, input=PASSWORD.encode() + b"\n", stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env, check=False, timeout=600)
        wall = time.perf_counter() - t
        if done.returncode != 0:
            raise SystemExit(f"wifisync {' '.join(argv)} failed: {done.stderr.decode().strip()}")
        peak = float(rss.read().strip() or 0) / 1024 if GNU_TIME else float("nan")
    return wall, peak


def has_command(name: str) -> bool:
    """Whether the CLI offers ``name`` (commands land from several issues)."""
    done = subprocess.run([sys.executable, "-m", "wifisync.cli.main", "--help"],
                          capture_output=True, text=True, env=dict(os.environ,
                                                                   PYTHONPATH=str(REPO)))
    return name in done.stdout.split("{", 1)[-1].split("}", 1)[0].split(",")


def bench_size(root: Path, n: int, runs: int) -> None:
    """Every command over a vault of ``n`` items."""
    t = time.perf_counter()
    ids = build(root, n)
    print(f"built {n} items in {time.perf_counter() - t:.1f} s")
    k = f"{n // 1000}k"
    home = Home.locate(str(root))
    db = sqlite3.connect(home.store_file)
    with db:
        db.execute("DELETE FROM signature_marks")  # as after a restore: nothing marked
    db.close()
    wall, rss = run(root, "list")
    record(f"first list with no marks, {k} items (whole process)", [wall], "s")
    marks_as_after_a_sync(home.store_file, home.data_dir)
    wall, rss = run(root, "list")
    record(f"first list after a sync, {k} items (whole process)", [wall], "s",
           0.8 if n == 10_000 else None)
    figures: dict[str, tuple[list[str], float | None, float | None]] = {
        f"list, {k} items": (["list"], 1.0 if n == 10_000 else None,
                             120.0 if n == 100_000 else None),
        f"show by full ID, {k} items": (["show", ids[n // 2].hex()], 0.3, None),
        f"show by ID prefix, {k} items": (["show", ids[n // 3].hex()[:10]],
                                          0.3 if n == 10_000 else None, None),
        f"show by title, {k} items": (["show", f"Site {n // 4:06d}"],
                                      0.3 if n == 10_000 else None, None),
        f"status --json, {k} items": (["status", "--json"], 0.3, None),
    }
    if has_command("get"):
        figures[f"get by title, {k} items"] = (["get", f"Site {n // 5:06d}"],
                                              0.3 if n == 10_000 else None, None)
        figures[f"get by ID prefix, {k} items"] = (["get", ids[n // 6].hex()[:10]],
                                                  0.3 if n == 10_000 else None, None)
    # The first lookup by title decrypts every title once and stores their tags (see
    # vault/titlesearch.py); the figures above are those of the lookups after it.
    wall, _rss = run(root, "show", f"Site {n // 7:06d}")
    record(f"first show by title after a sync, {k} items (whole process)", [wall], "s")
    for name, (argv, wall_target, rss_target) in figures.items():
        walls, rsss = [], []
        for _ in range(runs):
            wall, rss = run(root, *argv)
            walls.append(wall)
            rsss.append(rss)
        record(name + " (wall)", walls, "s", wall_target)
        if GNU_TIME:
            record(name + " (peak RSS)", rsss, "MiB", rss_target)


def main() -> None:
    full = full_set()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[10_000, 100_000] if full else [10_000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if not GNU_TIME:
        print("no peak RSS figures: GNU time is missing (Debian: apt-get install time)")
    for n in args.sizes:
        root = Path(tempfile.mkdtemp(prefix="wifisync-bench-"))
        try:
            bench_size(root, n, args.runs)
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
