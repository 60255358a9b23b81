"""Sync core throughput: two SQLite stores in one process joined by an in-memory wire.

Prints records/s for an initial sync of 10k and 100k records (signature checks and SQLite
commits included) and, for a 100k vault, what a session costs when nothing changed
(bytes on the wire, ms median and p99). Targets: initial sync of 10k < 0.6 s and of 100k
< 3.5 s; no-change session < 10 ms and < 4 KiB.

Signature checks run in the daemon's verifier (wifisync.daemon.verifier: large batches in helper
processes), so the CPU figure names this process and the whole machine (helpers included)
separately. The records are signed as an import signs them (one signature per tree of 32,
docs/SECURITY.md "Records signed together"); ``--alone-sizes`` syncs again with every
record signed by itself, as records typed one at a time are.

    .venv/bin/python bench/sync_core.py [--sizes 10000 100000] [--alone-sizes 10000]
                                        [--syncs 3] [--runs 20] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import fill_signed, full_set, machine, record

from wifisync.daemon.verifier import HelperVerifier
from wifisync.model import crypto
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import TREE_LEAVES, VAULT_KEY_ITEM, Kind, Record
from wifisync.model.verifier import InlineVerifier, Verifier
from wifisync.store import SqliteStore, sigmarks
from wifisync.sync import Replica, SyncSession
from wifisync.vault.unlocked import META_VAULT_ID, Vault
from wifisync.wallclock import wall_ms

BODY_BYTES = 500
SYNC_TARGETS_S = {10_000: 0.6, 100_000: 3.5}  # issue 16, 2 cores
BUILD_CHUNK = 5000


def build_source(path: Path, n: int, alone: bool = False
                 ) -> tuple[SqliteStore, DeviceIdentity, list[Record]]:
    """A vault with ``n`` item records signed directly (no encryption needed for the bench):
    together, as an import signs them, or (``alone``) each by itself, as typed ones are."""
    ident = DeviceIdentity.generate()
    store = SqliteStore(path)
    # 64 MiB: receivers refuse a wrapped key cheaper than the floor
    Vault.create(store, ident, "source", "pw", crypto.KdfParams.fresh(1, 64 * 2**20))
    vault_id = store.get_meta(META_VAULT_ID)
    assert vault_id is not None
    trusted = [r for _i, held in store.heads_of_kind(Kind.MEMBER) for r in held]
    trusted += store.versions(VAULT_KEY_ITEM)
    fill_signed(store, ident, vault_id, n, BODY_BYTES, BUILD_CHUNK, alone=alone)
    return store, ident, trusted


def empty_peer(path: Path, vault_id: bytes, trusted: list[Record]
               ) -> tuple[SqliteStore, DeviceIdentity]:
    """A freshly paired device: it holds only what pairing handed over."""
    ident = DeviceIdentity.generate()
    store = SqliteStore(path)
    store.checkpoint_in_background()  # as a daemon's store does
    store.set_meta(META_VAULT_ID, vault_id)
    Replica(store, vault_id, ident.device_id, verifier=InlineVerifier(),
            now_ms=wall_ms).bootstrap(trusted)
    return store, ident


@dataclass(frozen=True)
class Peer:
    """One side: its store, its device ID and the key it marks accepted batches with (the
    daemon derives both once, when it starts)."""

    store: SqliteStore
    device_id: bytes
    mark_key: bytes

    @classmethod
    def of(cls, store: SqliteStore, ident: DeviceIdentity) -> Peer:
        return cls(store, ident.device_id, sigmarks.mark_key(ident))

    def replica(self, vault_id: bytes, verifier: Verifier) -> Replica:
        """A replica as the daemon makes it: its verifier, marks for what it accepts, and
        commits of what peers send without an fsync each."""
        return Replica(self.store, vault_id, self.device_id, verifier=verifier,
                       now_ms=wall_ms, durable=False, on_stored=functools.partial(
                           sigmarks.mark_accepted, self.store, self.mark_key))


def run_session(a: Peer, b: Peer, vault_id: bytes, verifier: Verifier
                ) -> tuple[float, int, list[SyncSession]]:
    """One complete session, frames delivered in order; returns seconds and wire bytes."""
    t0 = time.perf_counter()
    sessions = [SyncSession(a.replica(vault_id, verifier), b.device_id, now=0.0),
                SyncSession(b.replica(vault_id, verifier), a.device_id, now=0.0)]
    queue: deque[tuple[int, bytes]] = deque()
    for side in (0, 1):
        queue.extend((1 - side, f) for f in sessions[side].start(0.0))
    wire_bytes = 0
    while queue:
        to, frame = queue.popleft()
        wire_bytes += len(frame)
        out = sessions[to].receive(frame, 0.0)
        queue.extend((1 - to, f) for f in out.send)
    elapsed = time.perf_counter() - t0
    assert all(s.in_sync and not s.stats.fingerprint_mismatch for s in sessions)
    return elapsed, wire_bytes, sessions


def machine_cpu_s() -> float:
    """CPU seconds the whole machine spent busy so far (Linux; 0 elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system = (int(x) for x in fields[:3])
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=20, help="no-change sessions to time")
    parser.add_argument("--syncs", type=int, default=5 if full_set() else 3,
                        help="initial syncs per size, each into a fresh empty peer")
    parser.add_argument("--alone-sizes", type=int, nargs="*",
                        default=[10_000, 100_000] if full_set() else [10_000],
                        help="sizes synced again with every record signed by itself")
    parser.add_argument("--profile", action="store_true", help="cProfile the largest sync")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"records: {BODY_BYTES} B bodies, one author, received batches committed as the "
          f"daemon does (synchronous=NORMAL), every received record's signature checked; "
          f"signed together as an import signs them (one Ed25519 signature per tree of "
          f"{TREE_LEAVES}), and for --alone-sizes each signed by itself")
    verifier = HelperVerifier()  # the daemon's
    with tempfile.TemporaryDirectory(prefix="wifisync-bench-") as tmp:
        try:
            run_sizes(args, Path(tmp), verifier)
        finally:
            verifier.close()


def run_sizes(args: argparse.Namespace, tmp: Path, verifier: Verifier) -> None:
    """Every size of the bench, in the temporary directory ``tmp``."""
    runs = [(n, False) for n in args.sizes] + [(n, True) for n in args.alone_sizes]
    for n, alone in runs:
        t0 = time.perf_counter()
        src, ident, trusted = build_source(tmp / f"src{n}{'a' * alone}.db", n, alone)
        vault_id = src.get_meta(META_VAULT_ID)
        assert vault_id is not None
        build = time.perf_counter() - t0
        source = Peer.of(src, ident)
        times: list[float] = []
        for attempt in range(args.syncs):
            dst, dst_id = empty_peer(tmp / f"dst{n}{'a' * alone}-{attempt}.db", vault_id,
                                     trusted)
            receiver = Peer.of(dst, dst_id)
            profiler = cProfile.Profile() if (
                args.profile and n == max(args.sizes) and attempt == 0 and not alone) else None
            if profiler:
                profiler.enable()
            cpu0, all0 = time.process_time(), machine_cpu_s()
            secs, wire, sessions = run_session(receiver, source, vault_id, verifier)
            cpu, everything = time.process_time() - cpu0, machine_cpu_s() - all0
            if profiler:
                profiler.disable()
            assert dst.fingerprint() == src.fingerprint()
            moved = sessions[0].stats.records_applied
            times.append(secs)
            print(f"initial sync {n:>7} records{' signed alone' * alone}: {secs:6.2f} s, "
                  f"{moved / secs:9,.0f} records/s, {wire / 2**20:6.1f} MiB on the wire, "
                  f"CPU {cpu:.2f} s in this process, {everything:.2f} s machine-wide")
            if profiler:
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
            if attempt < args.syncs - 1:
                dst.close()
        how = ", each signed alone" if alone else ""
        record(f"initial sync, {n} records{how}, in process", times, "s",
               SYNC_TARGETS_S.get(n),
               note=f"{n / statistics.median(times):,.0f} records/s; "
                    f"source built in {build:.1f} s")
        if n == max(args.sizes) and not alone:
            times, sizes = [], []
            for _ in range(args.runs):
                secs, wire, _s = run_session(receiver, source, vault_id, verifier)
                times.append(secs * 1000)
                sizes.append(wire)
            record(f"no-change session, {n} records each side", times, "ms", 10.0,
                   note=f"{max(sizes)} bytes on the wire both ways (target < 4096)")
        src.close()
        dst.close()


if __name__ == "__main__":
    main()
