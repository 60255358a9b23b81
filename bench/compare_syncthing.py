"""wifisync beside Syncthing, in the same run: one small change, and a 10k-item initial sync.

Syncthing runs as two instances inside a network namespace this bench creates (only its
loopback is up, so nothing it does can leave it; global and local discovery, relays,
NAT, STUN, usage and crash reporting and upgrades are off all the same). Two settings:
its defaults (file-system watcher, 10 s delay, rescan hourly) and its fastest (watcher
with 1 s delay, rescan every 1 s). One change = one small new file on A until B holds it
with the same bytes; initial sync = 10k files of 500 B on A until B holds them all.
wifisync: real daemons on 127.0.0.1 (bench/propagation.py, bench/daemons.py), a change =
one new item committed on A until B's store holds it; initial sync = 10k records.

Needs root, ``ip`` (iproute2) and a ``syncthing`` binary (Debian: ``apt-get install
syncthing``; ``make bench`` installs both as root on Debian). Without them it says so and
skips. Writes bench/results/compare_syncthing.png (latencies side by side).

    .venv/bin/python bench/compare_syncthing.py [--changes N] [--default-changes N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchlib import Holdings, full_set, machine, make_group, record, seen_of, wait  # noqa: E402
from daemons import fill  # noqa: E402
from propagation import propagation  # noqa: E402

from wifisync.harness import free_port  # noqa: E402

FILE_BYTES = 500
SETTINGS = {"default": (10, 3600), "fastest": (1, 1)}  # fsWatcherDelayS, rescanIntervalS


def missing() -> str | None:
    """Why this machine cannot run Syncthing in a namespace, or None."""
    if shutil.which("syncthing") is None:
        return ("no `syncthing` binary: install it (Debian: apt-get install syncthing, or "
                "`make bench` as root) to compare")
    if shutil.which("ip") is None:
        return "no `ip` (iproute2): apt-get install iproute2"
    if os.geteuid() != 0:
        return "network namespaces need root"
    return None


@contextlib.contextmanager
def namespace() -> Iterator[str]:
    """A network namespace with only its loopback up; deleted on exit."""
    name = f"wsync-st-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=10)


class Syncthing:
    """One Syncthing instance: a home, a folder, a listen port, a process in the namespace."""

    def __init__(self, root: Path, name: str, netns: str) -> None:
        self.home = root / name
        self.folder = root / f"{name}-folder"
        self.folder.mkdir(parents=True)
        self.netns = netns
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        subprocess.run(["syncthing", "generate", f"--home={self.home}", "--no-default-folder",
                        "--skip-port-probing"], check=True, capture_output=True, timeout=60)
        done = subprocess.run(["syncthing", "serve", f"--home={self.home}", "--device-id"],
                              check=True, capture_output=True, text=True, timeout=60)
        self.device_id = done.stdout.strip().splitlines()[-1]

    def configure(self, peer: Syncthing, delay_s: int, rescan_s: int) -> None:
        """Share one folder with ``peer`` at a fixed address; nothing reaches outside."""
        path = self.home / "config.xml"
        tree = ET.parse(path)
        root = tree.getroot()
        options = root.find("options")
        assert options is not None
        for key, value in {
                "listenAddress": f"tcp://127.0.0.1:{self.port}", "globalAnnounceEnabled": "false",
                "localAnnounceEnabled": "false", "relaysEnabled": "false", "natEnabled": "false",
                "urAccepted": "-1", "autoUpgradeIntervalH": "0", "startBrowser": "false",
                "crashReportingEnabled": "false", "stunKeepaliveStartS": "0",
                "stunServer": "", "globalAnnounceServer": ""}.items():
            node = options.find(key)
            if node is None:
                node = ET.SubElement(options, key)
            node.text = value
        gui = root.find("gui")
        if gui is not None:
            gui.set("enabled", "false")
        for old in root.findall("folder"):
            root.remove(old)
        for old in root.findall("device"):
            if old.get("id") == peer.device_id:
                root.remove(old)
        device = ET.SubElement(root, "device", id=peer.device_id, name="peer",
                               compression="metadata", introducer="false")
        ET.SubElement(device, "address").text = f"tcp://127.0.0.1:{peer.port}"
        folder = ET.SubElement(root, "folder", id="bench", label="bench", path=str(self.folder),
                               type="sendreceive", rescanIntervalS=str(rescan_s),
                               fsWatcherEnabled="true", fsWatcherDelayS=str(delay_s))
        for dev in (self.device_id, peer.device_id):
            ET.SubElement(folder, "device", id=dev)
        tree.write(path)

    def start(self) -> None:
        """Run it inside the namespace."""
        env = dict(os.environ, STNOUPGRADE="1", HOME=str(self.home))
        with (self.home / "syncthing.log").open("ab") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, "syncthing", "serve",
                 f"--home={self.home}", "--no-browser", "--no-restart", "--logfile=-"],
                env=env, stdout=log, stderr=log)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def files_in(folder: Path) -> int:
    """Synced files in a folder (Syncthing's temporaries and markers start with a dot)."""
    return sum(1 for e in os.scandir(folder) if not e.name.startswith("."))


def wait_file(path: Path, data: bytes, timeout: float) -> None:
    """Until ``path`` holds ``data``."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            if path.read_bytes() == data:
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"Syncthing did not deliver {path.name} within {timeout:.0f} s")
        time.sleep(0.002)


def syncthing_pair(root: Path, netns: str, setting: str, files: int
                   ) -> tuple[Syncthing, Syncthing, float]:
    """Two instances sharing a folder that A fills with ``files`` files before they start;
    returns them and the seconds from start until B holds every file."""
    a, b = Syncthing(root, f"{setting}-a", netns), Syncthing(root, f"{setting}-b", netns)
    delay, rescan = SETTINGS[setting]
    a.configure(b, delay, rescan)
    b.configure(a, delay, rescan)
    for i in range(files):
        (a.folder / f"item-{i:06d}").write_bytes(os.urandom(FILE_BYTES))
    started = time.perf_counter()
    a.start()
    b.start()
    deadline = time.monotonic() + 600
    while files_in(b.folder) < files:
        if time.monotonic() > deadline:
            raise SystemExit(f"Syncthing did not sync {files} files in 600 s")
        time.sleep(0.05)
    return a, b, time.perf_counter() - started


def syncthing_changes(a: Syncthing, b: Syncthing, n: int, delay_s: int) -> list[float]:
    """One small new file on A until B holds it, ``n`` times."""
    wait_file_timeout = 60.0 + 3 * delay_s
    probe = os.urandom(16)
    (a.folder / "probe").write_bytes(probe)
    wait_file(b.folder / "probe", probe, wait_file_timeout)  # connected and settled
    out = []
    for i in range(n):
        data = os.urandom(64)
        target = b.folder / f"change-{i}"
        (a.folder / f"change-{i}").write_bytes(data)
        t = time.perf_counter()
        wait_file(target, data, wait_file_timeout)
        out.append(time.perf_counter() - t)
    return out


def wifisync_initial(root: Path, n: int) -> float:
    """Seconds from B's daemon start until it holds A's ``n`` records."""
    a, b = make_group(root / f"ws-sync-{n}", 2)
    try:
        fill(a, n)
        want = seen_of(a)
        a.start(peers=[], wait=False)
        wait(lambda: a.status() is not None)
        with Holdings(b) as b_holds:
            started = b.start(peers=[a], wait=False)
            wait(lambda: b_holds.holds(want), 300)
            return time.perf_counter() - started
    finally:
        a.stop()
        b.stop()


def wifisync_changes(root: Path, n: int) -> list[float]:
    """Commit on A until B's store holds it, ``n`` times (bench/propagation.py's loop)."""
    a, b = make_group(root / "ws-changes", 2)
    try:
        a.start(peers=[], wait=False)
        wait(lambda: a.status() is not None)
        b.start(peers=[a], wait=False)
        wait(lambda: a.peers_connected() == 1)
        return propagation(a, b, n)
    finally:
        a.stop()
        b.stop()


def plot(latencies: dict[str, list[float]], initial: dict[str, float], items: int,
         path: Path) -> bool:
    """Change latencies side by side (log scale) and the initial sync times."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5),
                                      gridspec_kw={"width_ratios": [3, 2]})
    names = list(latencies)
    left.boxplot([[s * 1000 for s in latencies[k]] for k in names], showfliers=True)
    left.set_xticks(range(1, len(names) + 1), names, fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("ms, log scale")
    left.set_title("one small change, A until B holds it")
    right.bar(list(initial), list(initial.values()), color=["tab:blue"] +
              ["tab:orange"] * (len(initial) - 1))
    right.set_ylabel("s")
    right.set_title(f"initial sync of {items} items / files")
    right.tick_params(axis="x", labelsize=8)
    fig.suptitle(f"wifisync vs Syncthing ({machine()[:60]}...)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> None:
    full = full_set()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=30 if full else 10,
                        help="changes timed with Syncthing's fastest settings")
    parser.add_argument("--default-changes", type=int, default=10 if full else 4,
                        help="changes timed with its defaults (about 10 s each)")
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    reason = missing()
    if reason:
        print(f"skipped: {reason}")
        return
    version = subprocess.run(["syncthing", "serve", "--version"], capture_output=True,
                             text=True, check=False).stdout.strip()
    print(f"syncthing: {version}")
    root = Path(tempfile.mkdtemp(prefix="wifisync-bench-st-"))
    latencies: dict[str, list[float]] = {}
    initial: dict[str, float] = {}
    try:
        latencies["wifisync"] = wifisync_changes(root, max(50, args.changes))
        initial["wifisync"] = wifisync_initial(root, args.items)
        with namespace() as netns:
            for setting, n in (("fastest", args.changes), ("default", args.default_changes)):
                # The quick set times Syncthing's initial sync once: both settings scan
                # the folder at start the same way; the full set times it under both.
                files = args.items if setting == "fastest" or full else 0
                a, b, secs = syncthing_pair(root, netns, setting, files)
                try:
                    if files:
                        initial[f"Syncthing {setting}"] = secs
                    latencies[f"Syncthing {setting}"] = syncthing_changes(
                        a, b, n, SETTINGS[setting][0])
                finally:
                    a.stop()
                    b.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ws = latencies["wifisync"]
    record("one change, wifisync (commit on A until in B's store)", [s * 1000 for s in ws],
           "ms", 1.5)
    ws_med = sorted(ws)[len(ws) // 2]
    for setting in ("fastest", "default"):
        st = latencies[f"Syncthing {setting}"]
        record(f"one change, Syncthing {setting} (file on A until on B)",
               [s * 1000 for s in st], "ms")
        st_med = sorted(st)[len(st) // 2]
        record(f"one change: Syncthing {setting} / wifisync (medians)", [st_med / ws_med], "x",
               note="how many times faster wifisync is")
        if f"Syncthing {setting}" in initial:
            st_secs = initial[f"Syncthing {setting}"]
            record(f"initial sync {args.items}: Syncthing {setting} / wifisync",
                   [st_secs / initial["wifisync"]], "x",
                   note=f"Syncthing {st_secs:.1f} s (start to all files), "
                        f"wifisync {initial['wifisync']:.1f} s (B's start to all records)")
    RESULTS.mkdir(exist_ok=True)
    if plot(latencies, initial, args.items, RESULTS / "compare_syncthing.png"):
        print(f"plot: {RESULTS / 'compare_syncthing.png'}")
    else:
        print("no plot: matplotlib is missing (pip install -e '.[bench]')")


if __name__ == "__main__":
    main()
