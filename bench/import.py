"""Import throughput: 10k-item Bitwarden JSON and a 10k-entry KeePass file, unlock included.

Run: .venv/bin/python bench/import.py [--items N] [--runs R]
Each run imports into a fresh SQLite vault on disk (unlock with the default Argon2id cost,
parse, write through ``Vault`` in batched transactions). Also timed: a re-import of the
same file (everything skipped) and one full ``wifisync import`` CLI process. Then, with
two real daemons on 127.0.0.1 (set up as in bench/propagation.py), the time from the
commit of an import on A until B's store holds every imported record.
Targets: 10k Bitwarden JSON items in under 3 s; the import on a connected peer in under 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import machine, record

from wifisync.model import crypto
from wifisync.model.identity import DeviceIdentity
from wifisync.store import SqliteStore
from wifisync.transfer import importers
from wifisync.transfer.importing import import_items
from wifisync.vault.unlocked import Vault

PASSWORD = "bench master password"
KDBX_PASSWORD = "bench source password"


def bitwarden_file(n: int) -> bytes:
    """A Bitwarden export of ``n`` items: mostly logins, some notes and cards."""
    items = []
    for i in range(n):
        item: dict[str, object] = {"id": f"id-{i}", "folderId": "f1", "name": f"Site {i}",
                                   "notes": f"note {i}\nsecond line", "favorite": i % 10 == 0,
                                   "reprompt": 0, "fields": [
                                       {"name": "PIN", "value": str(i), "type": 1}]}
        if i % 10 == 9:
            item.update(type=3, card={"cardholderName": "Ada", "number": "4111" * 4,
                                      "expMonth": "9", "expYear": "2029", "code": "123"})
        elif i % 10 == 8:
            item.update(type=2, secureNote={"type": 0})
        else:
            item.update(type=1, login={"uris": [{"uri": f"https://site{i}.example"}],
                                       "username": f"user{i}", "password": f"pw-{i}-secret"})
        items.append(item)
    doc = {"encrypted": False, "folders": [{"id": "f1", "name": "Bench"}], "items": items}
    return json.dumps(doc).encode()


def kdbx_file(path: Path, n: int) -> bytes:
    """A KeePass file with ``n`` entries in a few groups."""
    from pykeepass import create_database

    kp = create_database(str(path), password=KDBX_PASSWORD)
    groups = [kp.add_group(kp.root_group, f"Group {g}") for g in range(10)]
    for i in range(n):
        e = kp.add_entry(groups[i % 10], f"Entry {i}", f"user{i}", f"pw-{i}",
                         url=f"https://site{i}.example", notes=f"note {i}",
                         force_creation=True)
        if i % 5 == 0:
            e.set_custom_property("PIN", str(i), protect=True)
    kp.save()
    return path.read_bytes()


def new_home(root: Path) -> tuple[SqliteStore, DeviceIdentity]:
    """A fresh vault on disk with the default (production) Argon2id cost."""
    root.mkdir()
    identity = DeviceIdentity.generate()
    store = SqliteStore(root / "vault.db")
    Vault.create(store, identity, "bench", PASSWORD, crypto.KdfParams.fresh())
    return store, identity


def one_import(store: SqliteStore, identity: DeviceIdentity, data: bytes,
               source_password: str | None) -> int:
    """What ``wifisync import`` does after start-up: unlock, parse, write."""
    vault = Vault.unlock(store, identity, PASSWORD)
    module = importers.importer(None, data)
    parsed = module.parse(data, source_password)
    summary = import_items(vault, parsed, module.FAMILY)
    return summary.total("imported") + summary.total("updated") + summary.total("skipped")


def report(name: str, n: int, times: list[float], target_s: float | None = None) -> None:
    """One figure in seconds, with items/s at the median as a note."""
    record(name, times, "s", target_s, note=f"{n / statistics.median(times):,.0f} items/s")


def bench(name: str, data: bytes, n: int, runs: int, tmp: Path,
          source_password: str | None = None) -> None:
    first: list[float] = []
    again: list[float] = []
    for r in range(runs):
        store, identity = new_home(tmp / f"{name}-{r}")
        try:
            for bucket in (first, again):
                t = time.perf_counter()
                count = one_import(store, identity, data, source_password)
                bucket.append(time.perf_counter() - t)
                assert count == n, count
        finally:
            store.close()
    report(f"{name} import", n, first, 3.0 if name == "bitwarden-json" else None)
    report(f"{name} re-import (all skipped)", n, again)


def cli_once(data: bytes, n: int, tmp: Path) -> None:
    """One real ``wifisync import`` process (Python start-up and imports included)."""
    home = tmp / "cli-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIFISYNC_")}
    env.update(WIFISYNC_PASSWORD=PASSWORD, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    base = [sys.executable, "-m", "wifisync.cli.main", "--home", str(home)]
    subprocess.run([*base, "init", "--name", "bench"], env=env, check=True,
                   capture_output=True)
    src = tmp / "cli.json"
    src.write_bytes(data)
    t = time.perf_counter()
    subprocess.run([*base, "import", str(src)], env=env, check=True, capture_output=True)
    report("CLI process, bitwarden-json", n, [time.perf_counter() - t])


def reach_peer(data: bytes, n: int, runs: int, tmp: Path) -> None:
    """From the import's commit on A (then the CLI's notify) until B holds every record."""
    from benchlib import PASSWORD as GROUP_PASSWORD
    from benchlib import make_group, wait

    from wifisync.client.control import notify_daemon

    times = []
    for r in range(runs):
        a, b = make_group(tmp / f"peers-{r}", 2)
        try:
            a.start(peers=[], wait=False)
            wait(lambda a=a: a.peers_connected() == 0)
            b.start(peers=[a], wait=False)
            wait(lambda a=a: a.peers_connected() == 1)
            store = SqliteStore(a.home.store_file)
            vault = Vault.unlock(store, DeviceIdentity.load(a.home.data_dir), GROUP_PASSWORD)
            module = importers.importer(None, data)
            summary = import_items(vault, module.parse(data, None), module.FAMILY)
            committed = time.perf_counter()
            notify_daemon(a.home)
            assert summary.total("imported") == n
            want = store.count_records()
            watch = SqliteStore(b.home.store_file)
            deadline = committed + 60
            while watch.count_records() < want and time.perf_counter() < deadline:
                time.sleep(0.002)
            assert watch.count_records() == want, "B did not receive the import in 60 s"
            times.append(time.perf_counter() - committed)
            watch.close()
            store.close()
        finally:
            a.stop()
            b.stop()
    report("import on A until all of it in B's store", n, times, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bw = bitwarden_file(args.items)
        bench("bitwarden-json", bw, args.items, args.runs, tmp)
        t = time.perf_counter()
        kdbx = kdbx_file(tmp / "bench.kdbx", args.items)
        print(f"(kdbx fixture of {args.items} entries built in {time.perf_counter() - t:.1f} s)")
        bench("kdbx", kdbx, args.items, max(1, args.runs - 2), tmp, KDBX_PASSWORD)
        cli_once(bw, args.items, tmp)
        reach_peer(bw, args.items, max(1, args.runs - 2), tmp)
    print("targets: bitwarden-json import of 10k items under 3 s (median, unlock included); "
          "the import in a connected peer's store under 2 s after it commits")


if __name__ == "__main__":
    main()
