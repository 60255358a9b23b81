"""The memory readings tests and benches take: a child between vfork and exec counts once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.memory import memory_kib, process_tree, shares_parent_memory, tree_rss_mib


def test_a_child_not_yet_in_its_own_program_is_its_parents_pages() -> None:
    """Python starts a child by vfork, then exec: in between, the child's RSS is its
    parent's; a sum of RSS over the tree counted such a daemon twice, the tree reading
    counts it once. A started child is counted on its own."""
    if not os.path.exists(f"/proc/{os.getpid()}/task"):
        pytest.skip("no /proc on this system")
    held = bytearray(64 * 1024 * 1024)
    held[::4096] = b"\x01" * len(held[::4096])  # resident: 64 MiB of our own
    own = memory_kib(os.getpid()) / 1024
    naive: list[float] = []
    tree: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            total = 0
            for p in process_tree(os.getpid()):
                try:
                    total += memory_kib(p)
                except (OSError, LookupError):
                    continue
            naive.append(total / 1024)
            tree.append(tree_rss_mib(os.getpid()))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(40):  # bounded: 40 short children
            child = subprocess.Popen([sys.executable, "-I", "-S", "-c", "input()"],
                                     stdin=subprocess.PIPE)
            child.communicate(b"\n", timeout=30)
            if max(naive, default=0) > 1.5 * own:
                break
    finally:
        stop.set()
        watcher.join()
    if max(naive) <= 1.5 * own:
        pytest.skip("no sample fell between a child's vfork and its exec")
    assert max(tree) < 1.5 * own


def test_a_started_child_counts_on_its_own() -> None:
    if not os.path.exists(f"/proc/{os.getpid()}/task"):
        pytest.skip("no /proc on this system")
    child = subprocess.Popen([sys.executable, "-I", "-S", "-c", "input()"],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while b"-c" not in Path(f"/proc/{child.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline  # until it runs its own program
        assert not shares_parent_memory(child.pid)
        assert tree_rss_mib(os.getpid()) * 1024 >= memory_kib(os.getpid()) \
            + memory_kib(child.pid) - 1024
    finally:
        child.communicate(b"\n", timeout=30)
