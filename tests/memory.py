"""Memory of processes as Linux shows it (tests and benches): a CLI run's peak, a daemon's.

A daemon's peak since a moment: ``reset_peak`` (``/proc/PID/clear_refs``), then ``VmHWM``
with ``memory_kib``; a daemon with its signature helpers: ``tree_rss_mib``.

Peak memory of one CLI run, as the CLI process itself saw it:
``wait4``'s ``ru_maxrss`` also counts the parent's pages the child inherited before it
exec'd (a test holding 32 MiB would read as a 32 MiB CLI), so the child reports its own
``VmHWM`` (this process image only) when it exits. The key derivation's own peak
(Argon2id, 64 MiB at least) is left out: it is the same for every command that unlocks
and would hide what the command itself holds. The peak before it is kept; after it,
``/proc/self/clear_refs`` starts the count again.
"""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

_RUN = (
    "import atexit, os, sys\n"
    "def status(key):\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith(key + ':'):\n"
    "            return int(line.split()[1])\n"
    "    return 0\n"
    "import wifisync.model.crypto as crypto\n"
    "from wifisync.cli.main import main\n"
    "peaks = []\n"
    "kdf = crypto.password_key\n"
    "def password_key(*args, **kw):\n"
    "    peaks.append(status('VmHWM'))\n"
    "    try:\n"
    "        return kdf(*args, **kw)\n"
    "    finally:\n"
    "        open('/proc/self/clear_refs', 'w').write('5')\n"
    "crypto.password_key = password_key\n"
    "def report():\n"
    "    peaks.append(status('VmHWM'))\n"
    "    open(os.environ['WIFISYNC_TEST_PEAK_FILE'], 'w').write(str(max(peaks)))\n"
    "atexit.register(report)\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def cli_peak_kib(args: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``wifisync ARGS`` to success; its peak resident set size in KiB, KDF left out."""
    fd, name = tempfile.mkstemp(prefix="wifisync-peak-")
    os.close(fd)
    try:
        r = subprocess.run([sys.executable, "-c", _RUN, *args],
                           env={**env, "WIFISYNC_TEST_PEAK_FILE": name},
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=300, check=False)
        assert r.returncode == 0, f"wifisync {' '.join(args)}: {r.stderr.decode()}"
        return int(Path(name).read_text())
    finally:
        os.unlink(name)


def process_tree(pid: int) -> list[int]:
    """``pid`` and every descendant (a daemon's signature helpers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in
                         Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return out


def memory_kib(pid: int, key: str = "VmRSS") -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/PID/status, in KiB; OSError when the process is gone."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise LookupError(f"no {key} for process {pid}")


def reset_peak(pid: int) -> int:
    """Reset a process's peak RSS (Linux ``clear_refs`` 5); returns its RSS now, in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return memory_kib(pid)


def shares_parent_memory(pid: int) -> bool:
    """Whether ``pid`` still runs in its parent's address space: a child between ``vfork``
    and ``exec`` (how Python starts a subprocess), whose RSS is its parent's very pages.

    Linux's ``kcmp`` compares the two; where it is unknown, the answer is no.
    """
    number = _KCMP_SYSCALL.get(platform.machine())
    try:
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return False
    if number is None or parent <= 1:
        return False
    return bool(ctypes.CDLL(None).syscall(number, pid, parent, _KCMP_VM, 0, 0) == 0)


_KCMP_SYSCALL = {"x86_64": 312, "aarch64": 272}
_KCMP_VM = 1


def tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants (those still there), MiB; a child
    not yet started in a program of its own is its parent's pages, counted once."""
    total = 0
    for p in process_tree(pid):
        if p != pid and shares_parent_memory(p):
            continue
        try:
            total += memory_kib(p)
        except (OSError, LookupError):
            continue  # a helper that exited (or a zombie) holds no memory
    return total / 1024
