"""Rebuild a hardened unit's file system view, then exec its command (run as root under unshare -m).

What systemd does for ``ProtectSystem=strict``, ``ProtectHome=read-only``,
``ReadWritePaths=`` and ``PrivateTmp=yes``: every mount read-only except the writable
paths, and a fresh /tmp. ``--keep DIR`` carries one folder that lives under /tmp (the
test's home) into the private /tmp at the same path, as the user's home would be.

    unshare -m --propagation private python sandbox.py --keep H --rw P... -- CMD ARGS...
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

SCRATCH = Path("/mnt")  # only ever written inside the private mount namespace
SPECIAL = ("/proc", "/sys", "/dev")
PRIVATE_TMP = ("/tmp", "/var/tmp")


def mount(*args: str) -> None:
    """Run mount(8); any failure ends the sandbox with the reason."""
    r = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        sys.exit(f"sandbox: mount {' '.join(args)}: {r.stderr.strip()}")


def under(path: str, roots: tuple[str, ...]) -> bool:
    """Whether ``path`` is one of ``roots`` or inside one."""
    return any(path == r or path.startswith(r + "/") for r in roots)


def mount_points() -> list[str]:
    """Every mount point now, but the kernel's own file systems."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if not under(point, SPECIAL + PRIVATE_TMP):
            points.append(point)
    return list(dict.fromkeys(points))


def main() -> None:
    """Build the view and exec the command."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", type=Path, required=True)
    parser.add_argument("--rw", type=Path, action="append", default=[])
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    originals = mount_points()

    mount("-t", "tmpfs", "-o", "mode=0700", "scratch", str(SCRATCH))
    carried = SCRATCH / "keep"
    carried.mkdir()
    mount("--bind", str(args.keep), str(carried))
    for tmp in PRIVATE_TMP:  # PrivateTmp=yes
        mount("-t", "tmpfs", "-o", "mode=1777", "private-tmp", tmp)
    args.keep.mkdir(parents=True)
    mount("--move", str(carried), str(args.keep))
    mount("--make-private", str(args.keep))

    for path in args.rw:  # ReadWritePaths= (a path that does not exist is skipped, as "-")
        if path.exists():
            mount("--bind", str(path), str(path))
    for point in [*originals, str(args.keep)]:  # ProtectSystem=strict, ProtectHome=read-only
        if Path(point).is_dir() or point == "/":
            mount("-o", "remount,bind,ro", point)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
