"""Rebuild a hardened unit's file system view, then exec its command (run as root under unshare -m).

What systemd does for ``ProtectSystem=strict``, ``ProtectHome=read-only``,
``ReadWritePaths=`` and ``PrivateTmp=yes``: every mount read-only except the writable
paths, and a fresh /tmp. ``--keep DIR`` (repeatable) carries a folder that lives under
/tmp (the test's home, a checkout cloned there) into the private /tmp at the same path, as
the user's home would be; a folder outside /tmp is visible anyway and left as it is.
``--syscalls SPEC`` (repeatable, the unit's ``SystemCallFilter=`` values, groups expanded
by systemd-analyze) and ``--syscall-errno`` load the same seccomp filter (python3-seccomp).

    unshare -m --propagation private python3 sandbox.py --keep H --rw P... -- CMD ARGS...
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


def expand(name: str, seen: set[str] | None = None) -> set[str]:
    """A system call or ``@group`` as system call names (groups from systemd-analyze)."""
    if not name.startswith("@"):
        return {name}
    seen = seen if seen is not None else set()
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True,
                         text=True, check=True).stdout
    calls: set[str] = set()
    for line in out.splitlines()[1:]:
        word = line.strip()
        if word and not word.startswith("#"):
            calls |= expand(word, seen)
    return calls


def load_syscall_filter(specs: list[str], errno_name: str | None) -> None:
    """``SystemCallFilter=`` as systemd applies it: an allow list, ``~`` lines take away."""
    import errno

    import seccomp  # Debian's python3-seccomp

    allowed: set[str] = set()
    for spec in specs:
        deny = spec.startswith("~")
        names = set().union(*(expand(n) for n in spec.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    default = seccomp.ERRNO(getattr(errno, errno_name)) if errno_name else seccomp.KILL_PROCESS
    f = seccomp.SyscallFilter(defaction=default)
    for name in sorted(allowed):
        try:
            f.add_rule(seccomp.ALLOW, name)
        except (RuntimeError, ValueError):
            continue  # not a system call on this architecture
    for name in ("execve", "execveat"):  # to start the service itself (systemd does the same)
        f.add_rule(seccomp.ALLOW, name)
    f.load()


def main() -> None:
    """Build the view and exec the command."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", type=Path, action="append", required=True)
    parser.add_argument("--rw", type=Path, action="append", default=[])
    parser.add_argument("--syscalls", action="append", default=[])
    parser.add_argument("--syscall-errno")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    originals = mount_points()

    kept = [k.resolve() for k in args.keep if under(str(k.resolve()), PRIVATE_TMP)]
    mount("-t", "tmpfs", "-o", "mode=0700", "scratch", str(SCRATCH))
    for n, keep in enumerate(kept):
        (SCRATCH / str(n)).mkdir()
        mount("--bind", str(keep), str(SCRATCH / str(n)))
    for tmp in PRIVATE_TMP:  # PrivateTmp=yes
        mount("-t", "tmpfs", "-o", "mode=1777", "private-tmp", tmp)
    for n, keep in enumerate(kept):
        keep.mkdir(parents=True)
        mount("--move", str(SCRATCH / str(n)), str(keep))
        mount("--make-private", str(keep))

    for path in args.rw:  # ReadWritePaths= (a path that does not exist is skipped, as "-")
        if path.exists():
            mount("--bind", str(path), str(path))
    for point in [*originals, *map(str, kept)]:  # ProtectSystem=strict, ProtectHome=read-only
        if Path(point).is_dir() or point == "/":
            mount("-o", "remount,bind,ro", point)
    if args.syscalls:
        load_syscall_filter(args.syscalls, args.syscall_errno)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
