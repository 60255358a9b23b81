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

import os
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


def tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants (those still there), MiB."""
    total = 0
    for p in process_tree(pid):
        try:
            total += memory_kib(p)
        except (OSError, LookupError):
            continue  # a helper that exited (or a zombie) holds no memory
    return total / 1024
