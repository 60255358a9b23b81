"""A stranger's flood and a member's worst frames, against the targets of issue 13.

Part 1, real daemons on loopback: daemon A is started with a systemd service's limits
(soft 1024 open files); member B dials it. A stranger at 127.0.0.2 keeps 3000 idle TCP
connections and 200 half-sent TLS handshakes open against A (reopening what A closes,
in bounded rounds). Measured: a change written on B until it is in A's store, without
and with the flood; a restarted B until its session with A is up again; A's open files
during the flood and how long after it they take to return to their base.

Part 2, in this process on a real SQLite store: the worst frames the limits allow, fed
to the sync session a member's connection drives (the same ``SyncSession.receive`` the
daemon runs on its store thread). Measured per frame: the store thread's CPU time and
the peak of traced memory. Part 3 sends the same frames over a member's real TLS
WebSocket to a running daemon: its CPU time (every thread) and peak RSS (VmHWM).

    .venv/bin/python bench/flood.py [--changes 100] [--idle 3000] [--half 200]

Targets: p50 of a change under the flood < 50 ms more than without; restarted member
back within 2 s; open files at their base within 10 s after the flood; each worst frame
< 64 MiB extra and < 100 ms of store-thread time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import secrets
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchlib import (  # noqa: E402
    cpu_seconds,
    machine,
    make_group,
    percentile,
    record,
    wait,
)

from tests.memory import memory_kib  # noqa: E402
from wifisync.client.control import notify_daemon  # noqa: E402
from wifisync.daemon.verifier import HelperVerifier  # noqa: E402
from wifisync.harness import Device  # noqa: E402
from wifisync.model.codec import vector  # noqa: E402
from wifisync.model.identity import DeviceIdentity  # noqa: E402
from wifisync.model.records import (  # noqa: E402
    DEVICE_ID_BYTES,
    MAX_VECTOR_ENTRIES,
    Kind,
    Record,
    RecordHeader,
    sign_record,
)
from wifisync.store.sqlite import SqliteStore  # noqa: E402
from wifisync.sync import Replica, SyncSession  # noqa: E402
from wifisync.sync.messages import (  # noqa: E402
    MAX_BATCH_BYTES,
    MAX_FRAME_BYTES,
    MAX_IDS_PER_LIST,
    PROTOCOL_VERSION,
    Checkpoint,
    Hello,
    IdList,
    Push,
    encode_message,
)
from wifisync.vault.unlocked import META_VAULT_ID  # noqa: E402
from wifisync.wallclock import wall_ms  # noqa: E402

STRANGER = "127.0.0.2"
SERVICE_NOFILE = 1024  # systemd's default soft limit for a service
HALF_HELLO = bytes.fromhex("160301020001000200")  # a TLS record header and a partial hello
MiB = 1024 * 1024
REOPEN_PER_ROUND = 250


def verdict(ok: bool) -> str:
    """The word every target line ends with."""
    return "PASS" if ok else "FAIL"


def open_files(pid: int) -> int:
    """File descriptors a process holds."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def start_as_service(node: Device, peers: list[Device]) -> float:
    """Start a daemon with soft NOFILE 1024 (the hard limit kept), as systemd would."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    saved = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (SERVICE_NOFILE, hard))
    try:  # the child inherits the limit at fork; no preexec_fn needed
        return node.start(peers=peers, wait=False)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, saved)


class Flood:
    """A stranger's idle and half-handshaken connections, kept open by a bounded thread."""

    def __init__(self, port: int, idle: int, half: int) -> None:
        self.port, self.idle, self.half = port, idle, half
        self.sockets: list[socket.socket | None] = [None] * (idle + half)
        self.stop = threading.Event()
        self.opened = 0
        self.thread = threading.Thread(target=self._keep, daemon=True)

    def _open(self, i: int) -> None:
        s = socket.socket()
        s.setblocking(False)
        s.bind((STRANGER, 0))
        with contextlib.suppress(BlockingIOError, OSError):
            s.connect(("127.0.0.1", self.port))
        self.sockets[i] = s
        self.opened += 1

    def _closed_by_peer(self, s: socket.socket) -> bool:
        try:
            return s.recv(1) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _keep(self) -> None:
        for i in range(len(self.sockets)):
            self._open(i)
        time.sleep(0.2)
        for i in range(self.idle, len(self.sockets)):
            with contextlib.suppress(OSError):
                self.sockets[i].send(HALF_HELLO)  # type: ignore[union-attr]
        # Reopen what the daemon closed: at most 40 rounds, one every 0.5 s, at most
        # REOPEN_PER_ROUND connections each (a stranger on another machine could churn
        # faster; here it would share the daemon's two cores).
        for _round in range(40):
            if self.stop.wait(0.5):
                return
            reopened = 0
            for i, s in enumerate(self.sockets):
                if reopened >= REOPEN_PER_ROUND:
                    break
                if s is not None and self._closed_by_peer(s):
                    reopened += 1
                    s.close()
                    self._open(i)
                    if i >= self.idle:
                        with contextlib.suppress(OSError):
                            self.sockets[i].send(HALF_HELLO)  # type: ignore[union-attr]

    def __enter__(self) -> Flood:
        self.thread.start()
        time.sleep(1.0)  # let the first wave land
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(15)
        for s in self.sockets:
            if s is not None:
                s.close()


def change_latency(writer: Device, reader: Device, changes: int) -> list[float]:
    """Seconds from a commit on ``writer`` until ``reader``'s store holds it, per change."""
    from propagation import PASSWORD

    from wifisync.vault.unlocked import Vault

    store = SqliteStore(writer.home.store_file)
    vault = Vault.unlock(store, DeviceIdentity.load(writer.home.data_dir), PASSWORD)
    watch = SqliteStore(reader.home.store_file)
    out = []
    try:
        for i in range(changes):
            item = vault.add(f"flood item {i}", fields={"password": "p" * 40})
            committed = time.perf_counter()
            notify_daemon(writer.home)
            deadline = committed + 10
            while not watch.heads(item) and time.perf_counter() < deadline:
                time.sleep(0.0002)
            out.append(time.perf_counter() - committed)
            time.sleep(0.005)
    finally:
        store.close()
        watch.close()
    return out


def restart_times(a: Device, b: Device, restarts: int) -> tuple[list[float], list[float]]:
    """Per restart of B: seconds from starting its process, and from its daemon answering
    on the control socket (Python's start-up left out), until its session with A is up."""
    back, after_ready = [], []
    for _ in range(restarts):
        b.stop()
        wait(lambda: not (a.peers_connected() > 0))
        started = b.start(peers=[a], wait=False)
        wait(lambda: b.status() is not None, 20)
        ready = time.perf_counter()
        wait(lambda: (a.peers_connected() > 0) and (b.peers_connected() > 0), 20)
        back.append(time.perf_counter() - started)
        after_ready.append(time.perf_counter() - ready)
    return back, after_ready


def ms_line(name: str, seconds: list[float], target: str, ok: bool) -> None:
    """Median and p99 in milliseconds, the target and its verdict."""
    record(name, [s * 1000 for s in seconds], "ms", note=f"target {target}: {verdict(ok)}")


def flood_part(root: Path, changes: int, idle: int, half: int, restarts: int) -> bool:
    """Part 1; returns whether every target held."""
    a, b = make_group(root, 2)
    start_as_service(a, [])
    wait(lambda: a.status() is not None)
    assert a.proc is not None
    b.start(peers=[a], wait=False)
    wait(lambda: (a.peers_connected() > 0) and (b.peers_connected() > 0))
    time.sleep(0.5)
    base_files = open_files(a.proc.pid)
    limits = Path(f"/proc/{a.proc.pid}/limits").read_text()
    soft = next(line.split()[3] for line in limits.splitlines()
                if line.startswith("Max open files"))
    print(f"daemon A: started with soft NOFILE {SERVICE_NOFILE}, runs with {soft}; "
          f"{base_files} open files with member B connected")
    quiet = change_latency(b, a, changes)
    ms_line("change B -> A, no flood", quiet, "reference", True)
    back, after_ready = restart_times(a, b, restarts)
    ms_line("restarted member B until its session is up, no flood", back, "reference", True)
    ms_line("  of which after B's daemon answers", after_ready, "reference", True)

    ok = True
    peak_files = 0
    with Flood(a.port, idle, half) as flood:
        loaded = change_latency(b, a, changes)
        peak_files = max(peak_files, open_files(a.proc.pid))
        extra = statistics.median(loaded) - statistics.median(quiet)
        good = extra < 0.050
        ok &= good
        ms_line(f"change B -> A, flood of {idle}+{half}", loaded,
                f"p50 < {statistics.median(quiet) * 1000 + 50:.1f} ms (+50)", good)
        back, after_ready = restart_times(a, b, restarts)
        peak_files = max(peak_files, open_files(a.proc.pid))
        good = max(back) < 2.0
        ok &= good
        ms_line("restarted member B until its session is up", back, "< 2000 ms (all)", good)
        ms_line("  of which after B's daemon answers", after_ready, "reference", True)
        print(f"stranger connections opened (with reopenings): {flood.opened}; "
              f"A's open files at most {peak_files} (base {base_files}, soft limit {soft})")
    ended = time.perf_counter()
    while open_files(a.proc.pid) > base_files and time.perf_counter() - ended < 30:
        time.sleep(0.05)
    settle = time.perf_counter() - ended
    final = open_files(a.proc.pid)
    good = final <= base_files and settle < 10
    ok &= good
    print(f"{'open files back to base after the flood':<46} {settle * 1000:8.0f} ms "
          f"({final} files, base {base_files})   target < 10 s: {verdict(good)}")
    for node in (b, a):
        node.stop()
    return ok


# --- part 2: worst frames ---------------------------------------------------------------


def _record(author: DeviceIdentity, vault_id: bytes, seq: int, body: bytes,
            extra_versions: int = 0, good_signature: bool = True) -> bytes:
    versions = {author.device_id: seq}
    while len(versions) < extra_versions + 1:
        versions[secrets.token_bytes(DEVICE_ID_BYTES)] = 1
    header = RecordHeader(vault_id, secrets.token_bytes(16), Kind.ITEM, author.device_id, seq,
                          versions, time.time_ns() // 1_000_000, False)
    record = sign_record(author, header, body)
    if good_signature:
        return record.encoded
    return Record.create(header, body, bytes(64)).encoded


def worst_frames(author: DeviceIdentity, vault_id: bytes) -> dict[str, bytes]:
    """The most expensive frames a member may send, one per kind of cost."""
    frames: dict[str, bytes] = {}
    n = MAX_FRAME_BYTES - 16
    frames["4 MiB of nested empty arrays"] = (
        b"\x92\x07\xdd" + struct.pack(">I", n) + b"\x90" * n)
    array_record = MAX_BATCH_BYTES // 4 - 16  # four records of empty arrays, 1 MiB in all
    frames["PUSH: 4 records of 256k empty arrays"] = encode_message(Push(tuple(
        b"\xdd" + struct.pack(">I", array_record) + b"\x90" * array_record for _ in range(4))))
    per = MAX_BATCH_BYTES // 1024 - 200
    frames["PUSH: 1024 signed 800 B records"] = encode_message(Push(tuple(
        _record(author, vault_id, 10_000 + i, secrets.token_bytes(per)) for i in range(1024))))
    frames["PUSH: 1024 records, bad signatures"] = encode_message(Push(tuple(
        _record(author, vault_id, 20_000 + i, secrets.token_bytes(per), good_signature=False)
        for i in range(1024))))
    wide: list[bytes] = []
    size = 0
    seq = 30_000
    while True:
        r = _record(author, vault_id, seq, b"x", extra_versions=MAX_VECTOR_ENTRIES - 1)
        if size + len(r) > MAX_BATCH_BYTES:
            break
        wide.append(r)
        size += len(r)
        seq += 1
    frames[f"PUSH: {len(wide)} records of 1024-entry vectors"] = encode_message(Push(tuple(wide)))
    ids = tuple(sorted(secrets.token_bytes(32) for _ in range(MAX_IDS_PER_LIST)))
    frames["ID_LIST of 8192 IDs (out of phase)"] = encode_message(IdList(0, ids, False))
    return frames


def frames_part(root: Path, runs: int) -> bool:
    """Part 2; returns whether every target held."""
    (a, b) = make_group(root / "frames", 2)
    member = DeviceIdentity.load(b.home.data_dir)
    store = SqliteStore(a.home.store_file)
    vault_id = store.get_meta(META_VAULT_ID)
    assert vault_id is not None
    me = DeviceIdentity.load(a.home.data_dir).device_id
    frames = worst_frames(member, vault_id)
    verifier = HelperVerifier()  # the daemon's: checks off the store thread

    def session() -> SyncSession:
        s = SyncSession(Replica(store, vault_id, me, verifier=verifier, now_ms=wall_ms),
                        member.device_id, now=0.0)
        s.start(0.0)
        s.receive(encode_message(Hello(PROTOCOL_VERSION, vault_id, vector(store.seen()),
                                       store.fingerprint())), 0.0)
        return s

    def feed(frame: bytes) -> None:
        with contextlib.suppress(Exception):  # most of these end the session: that is the point
            session().receive(frame, 0.0)

    ok = True
    for name, frame in frames.items():
        cpu = []
        for _ in range(runs):
            s = session()
            started = time.thread_time()
            with contextlib.suppress(Exception):
                s.receive(frame, 0.0)
            cpu.append(time.thread_time() - started)
        tracemalloc.start()
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        feed(frame)
        _now, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        extra = (peak - before) / MiB
        ms = sorted(c * 1000 for c in cpu)
        good = percentile(ms, 99) < 100 and extra < 64
        ok &= good
        print(f"{name:<46} {len(frame) / MiB:5.2f} MiB  store-thread CPU p50 "
              f"{statistics.median(ms):7.2f} ms  p99 {percentile(ms, 99):7.2f} ms   "
              f"peak +{extra:6.1f} MiB   target < 100 ms, < 64 MiB: {verdict(good)}")
    verifier.close()
    store.close()
    return ok


# --- part 3: the same frames over a real member connection to a running daemon ------------


async def _send_as_member(a: Device, b: Device, vault_id: bytes, frame: bytes) -> None:
    """Member B's own TLS WebSocket to A: HELLO, then ``frame``; until A closes (<= 5 s)."""
    import aiohttp

    from wifisync.net.address import SYNC_PATH
    from wifisync.net.tls import Credentials, client_context, member_server_name

    ctx = client_context(Credentials.in_dir(b.home.data_dir),
                         [DeviceIdentity.load(a.home.data_dir).cert_pem])
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"https://127.0.0.1:{a.port}{SYNC_PATH}", ssl=ctx, autoping=False,
            server_hostname=member_server_name(vault_id), max_msg_size=MAX_FRAME_BYTES) as ws:
        await ws.send_bytes(encode_message(Hello(PROTOCOL_VERSION, vault_id, (), bytes(32))))
        await ws.send_bytes(frame)
        deadline = time.monotonic() + 5
        while not ws.closed and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await ws.receive(timeout=max(0.01, deadline - time.monotonic()))


def daemon_part(root: Path) -> bool:
    """Part 3; returns whether every target held (CPU here is every thread's, an upper bound)."""
    import asyncio

    a, b = make_group(root / "daemon", 2)
    member = DeviceIdentity.load(b.home.data_dir)
    store = SqliteStore(a.home.store_file)
    vault_id = store.get_meta(META_VAULT_ID)
    held = store.count_records()
    store.close()
    assert vault_id is not None
    frames = worst_frames(member, vault_id)
    a.start(peers=[], wait=False)
    ok = True
    try:
        wait(lambda: a.status() is not None)
        assert a.proc is not None
        asyncio.run(_send_as_member(a, b, vault_id, encode_message(Checkpoint(0))))  # warm up
        base = memory_kib(a.proc.pid, 'VmHWM') * 1024
        print(f"daemon A over a real member connection: peak RSS at rest {base / MiB:.1f} MiB")
        for name, frame in frames.items():
            cpu = cpu_seconds(a.proc.pid)
            asyncio.run(_send_as_member(a, b, vault_id, frame))
            used = (cpu_seconds(a.proc.pid) - cpu) * 1000
            extra = (memory_kib(a.proc.pid, 'VmHWM') * 1024 - base) / MiB
            good = extra < 64
            ok &= good
            print(f"{name:<46} daemon CPU (all threads, with TLS and the session) "
                  f"{used:7.1f} ms   peak RSS +{extra:6.1f} MiB (cumulative)   "
                  f"target < 64 MiB: {verdict(good)}")
    finally:
        a.stop()
    store = SqliteStore(a.home.store_file)
    print(f"daemon A stored {store.count_records() - held} records from these frames "
          "(the validly signed ones)")
    store.close()
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--idle", type=int, default=3000)
    parser.add_argument("--half", type=int, default=200)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5, help="runs per worst frame")
    parser.add_argument("--skip-flood", action="store_true")
    args = parser.parse_args()
    print(machine())
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.idle + args.half + 256
    if soft < wanted:  # the stranger (this process) needs its own descriptors
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    root = Path(tempfile.mkdtemp(prefix="wifisync-flood-"))
    ok = True
    try:
        if not args.skip_flood:
            ok &= flood_part(root, args.changes, args.idle, args.half, args.restarts)
        ok &= frames_part(root, args.runs)
        ok &= daemon_part(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"all targets: {verdict(ok)}")


if __name__ == "__main__":
    main()
