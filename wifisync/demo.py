"""``make demo``: the CLI round trip on a throwaway device, each command shown with its output.

Everything happens under a temporary folder (``--home``), nothing touches the network,
and the folder is removed at the end unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from wifisync.errors import WifisyncError
from wifisync.harness import Cli, Device, wait_for
from wifisync.model.clock import hlc_wall_ms

DEMO_PASSWORD = "demo master password"


class DemoError(WifisyncError):
    """A demo step failed; the demo stops and says which."""


def run(device: Device, *args: str, env: dict[str, str] | None = None,
        secrets: tuple[str, ...] = ()) -> str:
    """Show the command as a user would type it, run it, show its output.

    ``secrets`` answer its ``--secret`` prompts through standard input, never argv.
    """
    print(f"$ wifisync --home $DEMO/{device.name} {shlex.join(args)}", flush=True)
    for value in secrets:
        print(f"  (typed at the prompt, not echoed: {value})", flush=True)
    result = device.cli.run(*args, env=env, input="".join(f"{v}\n" for v in secrets))
    output = result.stdout + result.stderr
    if output:
        print("  " + output.rstrip("\n").replace("\n", "\n  "), flush=True)
    print(flush=True)
    if result.returncode != 0:
        raise DemoError(f"`wifisync {' '.join(args)}` exited with {result.returncode}")
    return result.stdout


def new_device(root: Path, name: str) -> Device:
    """A device of the demo: its home under the demo folder, the demo password."""
    return Device(Cli(root / name, DEMO_PASSWORD), name)


def heading(text: str) -> None:
    """Mark a stage of the demo."""
    print(f"--- {text} ---\n", flush=True)


def single_device(root: Path) -> Device:
    """Create a device and a vault, then add, list, show, edit, history, delete, passwd."""
    laptop = new_device(root, "laptop")
    heading("one device: create a vault and work with items")
    print(f"(master password for the demo: {DEMO_PASSWORD!r}, "
          "given through WIFISYNC_PASSWORD)\n")
    run(laptop, "init", "--name", "laptop")
    run(laptop, "id")
    item = run(laptop, "add", "Home router", "--field", "user=admin", "--secret", "password",
                      "--tag", "network", secrets=("correct-horse",)).strip()
    run(laptop, "add", "Library card", "--type", "card", "--field", "number=0042-1337")
    run(laptop, "list")
    run(laptop, "show", "Home router")
    run(laptop, "edit", item[:8], "--secret", "password", "--field", "url=http://192.168.1.1",
               secrets=("battery-staple",))
    run(laptop, "show", item[:8], "--json")
    run(laptop, "history", "Home router")
    run(laptop, "rm", "Library card")
    run(laptop, "list", "--json")
    run(laptop, "passwd", env={"WIFISYNC_NEW_PASSWORD": "a new demo password"})
    return laptop


def start_daemon(device: Device, *peers: Device) -> None:
    """Start its daemon in the background (log beside its home) and wait until it answers."""
    args = [a for p in peers for a in ("--peer", p.address)]
    print(f"$ wifisync --home $DEMO/{device.name} daemon {shlex.join(args)} &", flush=True)
    device.start(peers=peers, timeout=15)
    print(f"  listening on {device.address}\n", flush=True)


def pair(member: Device, newcomer: Device) -> None:
    """``pair`` on a member, ``join CODE`` on the newcomer: the real pairing, by code."""
    print(f"$ wifisync --home $DEMO/{member.name} pair", flush=True)
    pairing = subprocess.Popen(
        member.cli.argv("pair", "--timeout", "60"), env=member.cli.env(),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert pairing.stdout is not None
    line = pairing.stdout.readline().strip()
    print(f"  {line}\n", flush=True)
    if not line.startswith("Pairing code:"):
        pairing.kill()
        raise DemoError(f"`wifisync pair` printed {line!r}")
    code = line.split(":", 1)[1].strip()
    run(newcomer, "join", code, "--address", member.address, "--name", newcomer.name)
    rest = pairing.communicate(timeout=30)[0]
    if rest.strip():
        print("  " + rest.strip().replace("\n", "\n  ") + "\n", flush=True)
    if pairing.returncode != 0:
        raise DemoError(f"`wifisync pair` exited with {pairing.returncode}")


class ArrivalWatch:
    """Notes the wall-clock moment new records land in other devices' stores."""

    def __init__(self, devices: Sequence[Device]) -> None:
        from wifisync.store.sqlite import SqliteStore

        self.stores = {d.name: SqliteStore(d.home.store_file) for d in devices}
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
    desktop, nas, phone = devices = [new_device(root, n) for n in ("desktop", "nas", "phone")]
    for device in devices:
        device.configure()
    try:
        run(desktop, "init", "--name", "desktop")
        run(desktop, "add", "Home Wi-Fi", "--field", "ssid=home", "--secret", "password",
            secrets=("hunter22",))
        start_daemon(desktop)
        pair(desktop, nas)
        start_daemon(nas, desktop)
        pair(nas, phone)
        start_daemon(phone, nas)
        wait_for(lambda: nas.peers_connected() >= 2, 15, "the nas to connect to its peers")
        run(phone, "list")
        heading("a change on the desktop arrives on the nas and, through it, on the phone")
        watch = ArrivalWatch([nas, phone])
        item = run(desktop, "add", "Streaming service", "--field", "user=family",
                   "--secret", "password", secrets=("popcorn",)).strip()
        for name, seconds in watch.finish(item).items():
            print(f"  arrived on {name} {seconds * 1000:.0f} ms after the desktop wrote it "
                  "(clock resolution 1 ms)")
        print(flush=True)
        run(phone, "show", "Streaming service", "--reveal")
        run(nas, "status")
        run(desktop, "devices")
    finally:
        heading("stopping the daemons")
        for d in devices:
            code = d.stop()
            if code is not None:
                print(f"  {d.name}: daemon exited with status {code}")
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
    except WifisyncError as exc:
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
