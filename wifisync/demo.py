"""``make demo``: the CLI round trip on a throwaway device, each command shown with its output.

Everything happens under a temporary folder (``--home``), nothing touches the network,
and the folder is removed at the end unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import wifisync
from wifisync.errors import WifisyncError
from wifisync.model.clock import hlc_wall_ms

DEMO_PASSWORD = "demo master password"
PACKAGE_ROOT = Path(wifisync.__file__).resolve().parents[1]


class DemoError(WifisyncError):
    """A demo step failed; the demo stops and says which."""


class Device:
    """One demo device: a ``--home`` folder driven through the real CLI in a subprocess."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        self.home = root / name

    def env(self) -> dict[str, str]:
        """The CLI's environment: the demo password, this checkout's package."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("WIFISYNC_")}
        env["WIFISYNC_PASSWORD"] = DEMO_PASSWORD
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT),
                                                          env.get("PYTHONPATH")]))
        return env

    def run(self, *args: str, env: dict[str, str] | None = None,
            secrets: tuple[str, ...] = ()) -> str:
        """Show the command as a user would type it, run it, show its output.

        ``secrets`` answer its ``--secret`` prompts through standard input, never argv.
        """
        print(f"$ wifisync --home $DEMO/{self.name} {shlex.join(args)}", flush=True)
        for value in secrets:
            print(f"  (typed at the prompt, not echoed: {value})", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "wifisync.cli.main", "--home", str(self.home), *args],
            capture_output=True, text=True, env={**self.env(), **(env or {})},
            input="".join(f"{v}\n" for v in secrets), timeout=120, check=False)
        output = result.stdout + result.stderr
        if output:
            print("  " + output.rstrip("\n").replace("\n", "\n  "), flush=True)
        print(flush=True)
        if result.returncode != 0:
            raise DemoError(f"`wifisync {' '.join(args)}` exited with {result.returncode}")
        return result.stdout


def heading(text: str) -> None:
    """Mark a stage of the demo."""
    print(f"--- {text} ---\n", flush=True)


def single_device(root: Path) -> Device:
    """Create a device and a vault, then add, list, show, edit, history, delete, passwd."""
    laptop = Device(root, "laptop")
    heading("one device: create a vault and work with items")
    print(f"(master password for the demo: {DEMO_PASSWORD!r}, "
          "given through WIFISYNC_PASSWORD)\n")
    laptop.run("init", "--name", "laptop")
    laptop.run("id")
    item = laptop.run("add", "Home router", "--field", "user=admin", "--secret", "password",
                      "--tag", "network", secrets=("correct-horse",)).strip()
    laptop.run("add", "Library card", "--type", "card", "--field", "number=0042-1337")
    laptop.run("list")
    laptop.run("show", "Home router")
    laptop.run("edit", item[:8], "--secret", "password", "--field", "url=http://192.168.1.1",
               secrets=("battery-staple",))
    laptop.run("show", item[:8], "--json")
    laptop.run("history", "Home router")
    laptop.run("rm", "Library card")
    laptop.run("list", "--json")
    laptop.run("passwd", env={"WIFISYNC_NEW_PASSWORD": "a new demo password"})
    return laptop


class Daemon:
    """One demo daemon on 127.0.0.1, its log in the demo folder, stopped at the end."""

    def __init__(self, device: Device) -> None:
        self.device = device
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.proc: subprocess.Popen[bytes] | None = None
        config = device.home / "config" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f'[daemon]\nlisten = "{self.address}"\nmdns = false\n')

    @property
    def address(self) -> str:
        """Where it listens."""
        return f"127.0.0.1:{self.port}"

    def start(self, *peers: Daemon) -> None:
        """Start it in the background and wait until its control socket answers."""
        from wifisync.client.control import daemon_status
        from wifisync.home import Home

        args = [a for p in peers for a in ("--peer", p.address)]
        print(f"$ wifisync --home $DEMO/{self.device.name} daemon {shlex.join(args)} &",
              flush=True)
        log = (self.device.root / f"{self.device.name}.daemon.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wifisync.cli.main", "--home", str(self.device.home),
             "daemon", *args], env=self.device.env(), stdin=subprocess.DEVNULL, stdout=log,
            stderr=log)
        home = Home.locate(str(self.device.home))
        deadline = time.monotonic() + 15
        while daemon_status(home) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise DemoError(f"the daemon of {self.device.name} did not start")
            time.sleep(0.02)
        print(f"  listening on {self.address}\n", flush=True)

    def wait_connected(self, count: int) -> None:
        """Until it holds ``count`` sessions."""
        from wifisync.client.control import daemon_status
        from wifisync.home import Home

        home = Home.locate(str(self.device.home))
        deadline = time.monotonic() + 15
        while len((daemon_status(home) or {}).get("peers", [])) < count:
            if time.monotonic() > deadline:
                raise DemoError(f"{self.device.name} did not connect to its peers")
            time.sleep(0.02)

    def stop(self) -> int | None:
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


def pair(member: Device, member_daemon: Daemon, newcomer: Device) -> None:
    """``pair`` on a member, ``join CODE`` on the newcomer: the real pairing, by code."""
    print(f"$ wifisync --home $DEMO/{member.name} pair", flush=True)
    pairing = subprocess.Popen(
        [sys.executable, "-m", "wifisync.cli.main", "--home", str(member.home), "pair",
         "--timeout", "60"], env=member.env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert pairing.stdout is not None
    line = pairing.stdout.readline().strip()
    print(f"  {line}\n", flush=True)
    if not line.startswith("Pairing code:"):
        pairing.kill()
        raise DemoError(f"`wifisync pair` printed {line!r}")
    code = line.split(":", 1)[1].strip()
    newcomer.run("join", code, "--address", member_daemon.address, "--name", newcomer.name)
    rest = pairing.communicate(timeout=30)[0]
    if rest.strip():
        print("  " + rest.strip().replace("\n", "\n  ") + "\n", flush=True)
    if pairing.returncode != 0:
        raise DemoError(f"`wifisync pair` exited with {pairing.returncode}")


class ArrivalWatch:
    """Notes the wall-clock moment new records land in other devices' stores."""

    def __init__(self, devices: Sequence[Device]) -> None:
        from wifisync.home import Home
        from wifisync.store.sqlite import SqliteStore

        self.stores = {d.name: SqliteStore(Home.locate(str(d.home)).store_file)
                       for d in devices}
        self.baseline = {n: s.count_records() for n, s in self.stores.items()}
        self.arrived: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        deadline = time.monotonic() + 30
        while not self._stop.is_set() and time.monotonic() < deadline:
            for name, store in self.stores.items():
                if name not in self.arrived and store.count_records() > self.baseline[name]:
                    self.arrived[name] = time.time()
            if len(self.arrived) == len(self.stores):
                return
            time.sleep(0.0005)

    def finish(self, item_id: str) -> dict[str, float]:
        """Seconds from the item's write (its record's clock time, in ms) to its arrival."""
        self._thread.join(30)
        self._stop.set()
        out = {}
        for name, store in self.stores.items():
            held = store.heads(bytes.fromhex(item_id))
            if not held or name not in self.arrived:
                raise DemoError(f"the item never arrived on {name}")
            out[name] = self.arrived[name] - hlc_wall_ms(held[0].header.time) / 1000
            store.close()
        return out


def pairing_available() -> bool:
    """Whether this build has the ``pair`` and ``join`` commands."""
    import argparse as _argparse

    from wifisync.cli.main import build_parser

    for action in build_parser()._actions:
        if isinstance(action, _argparse._SubParsersAction):
            return {"pair", "join"} <= set(action.choices)
    return False


def three_devices(root: Path) -> None:
    """Three devices on this machine in a line (phone - nas - desktop), paired by code."""
    heading("three devices on this machine: paired by code, synced live over mutual TLS")
    print("(each device has its own --home and its own daemon on 127.0.0.1; "
          "the phone only knows the nas, the nas only knows the desktop)\n")
    desktop, nas, phone = (Device(root, n) for n in ("desktop", "nas", "phone"))
    daemons = [Daemon(d) for d in (desktop, nas, phone)]
    d_desktop, d_nas, d_phone = daemons
    try:
        desktop.run("init", "--name", "desktop")
        desktop.run("add", "Home Wi-Fi", "--field", "ssid=home", "--secret", "password",
                    secrets=("hunter22",))
        d_desktop.start()
        pair(desktop, d_desktop, nas)
        d_nas.start(d_desktop)
        pair(nas, d_nas, phone)
        d_phone.start(d_nas)
        d_nas.wait_connected(2)
        phone.run("list")
        heading("a change on the desktop arrives on the nas and, through it, on the phone")
        watch = ArrivalWatch([nas, phone])
        item = desktop.run("add", "Streaming service", "--field", "user=family",
                           "--secret", "password", secrets=("popcorn",)).strip()
        for name, seconds in watch.finish(item).items():
            print(f"  arrived on {name} {seconds * 1000:.0f} ms after the desktop wrote it "
                  "(clock resolution 1 ms)")
        print(flush=True)
        phone.run("show", "Streaming service", "--reveal")
        nas.run("status")
        desktop.run("devices")
    finally:
        heading("stopping the daemons")
        for d in daemons:
            code = d.stop()
            if code is not None:
                print(f"  {d.device.name}: daemon exited with status {code}")
        print(flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo in a temporary folder."""
    parser = argparse.ArgumentParser(prog="python -m wifisync.demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the demo folder afterwards")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="wifisync-demo-"))
    print(f"DEMO={root}\n")
    try:
        single_device(root)
        if pairing_available():
            three_devices(root)
        else:
            print("(the three-device part needs `wifisync pair` and `join`, "
                  "which this build does not have yet)\n")
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("demo finished: everything above ran on this machine only (daemons on 127.0.0.1).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
