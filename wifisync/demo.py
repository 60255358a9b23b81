"""``make demo``: the CLI round trip on a throwaway device, each command shown with its output.

Everything happens under a temporary folder (``--home``), nothing touches the network,
and the folder is removed at the end unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import wifisync

DEMO_PASSWORD = "demo master password"
PACKAGE_ROOT = Path(wifisync.__file__).resolve().parents[1]


class DemoError(Exception):
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

    def run(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Show the command as a user would type it, run it, show its output."""
        print(f"$ wifisync --home $DEMO/{self.name} {shlex.join(args)}", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "wifisync.cli.main", "--home", str(self.home), *args],
            capture_output=True, text=True, env={**self.env(), **(env or {})},
            stdin=subprocess.DEVNULL, timeout=120, check=False)
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
    item = laptop.run("add", "Home router", "--field", "user=admin",
                      "--field", "password=correct-horse", "--tag", "network").strip()
    laptop.run("add", "Library card", "--type", "card", "--field", "number=0042-1337")
    laptop.run("list")
    laptop.run("show", "Home router")
    laptop.run("edit", item[:8], "--field", "password=battery-staple", "--field",
               "url=http://192.168.1.1")
    laptop.run("show", item[:8], "--json")
    laptop.run("history", "Home router")
    laptop.run("rm", "Library card")
    laptop.run("list", "--json")
    laptop.run("passwd", env={"WIFISYNC_NEW_PASSWORD": "a new demo password"})
    return laptop


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo in a temporary folder."""
    parser = argparse.ArgumentParser(prog="python -m wifisync.demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the demo folder afterwards")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="wifisync-demo-"))
    print(f"DEMO={root}\n")
    try:
        single_device(root)
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("demo finished: everything above ran on this machine only, no network used.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
