"""The core stays sans-IO: no event loop, network, thread, process, SQLite or clock in it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wifisync.model
import wifisync.pairing
import wifisync.sync

#: Nothing of the core starts a thread or process or opens a database: its owner injects them.
NO_THREADS_OR_PROCESSES = {"threading", "concurrent", "multiprocessing", "subprocess", "sqlite3",
                           "_thread"}
#: The sync core also does no I/O and reads no clock: time comes in as arguments.
SYNC_FORBIDDEN = {"asyncio", "aiohttp", "zeroconf", "socket", "ssl", "selectors", "time",
                  "wifisync.wallclock", "wifisync.daemon"} | NO_THREADS_OR_PROCESSES
CORE = {wifisync.model: NO_THREADS_OR_PROCESSES,
        wifisync.pairing: NO_THREADS_OR_PROCESSES | {"wifisync.daemon"},
        wifisync.sync: SYNC_FORBIDDEN}


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, by its top-level name and, for wifisync, also
    by its package (``wifisync.daemon``) and full name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            names.update(".".join(parts[:n]) for n in range(1, min(3, len(parts)) + 1))
    return names


@pytest.mark.parametrize("package", CORE, ids=lambda p: p.__name__)
def test_core_packages_import_no_io_threads_processes_or_clock(package: object) -> None:
    sources = sorted(Path(package.__file__).parent.glob("*.py"))  # type: ignore[attr-defined]
    assert len(sources) >= 4
    for path in sources:
        assert not imported_modules(path) & CORE[package], path.name  # type: ignore[index]


def test_the_guard_sees_each_form_of_import(tmp_path: Path) -> None:
    source = tmp_path / "planted.py"
    for line in ("import threading", "from concurrent.futures import Future",
                 "import os, subprocess", "from wifisync.daemon.verifier import HelperVerifier",
                 "from wifisync import wallclock", "from wifisync.wallclock import wall_ms"):
        source.write_text(f"from __future__ import annotations\n{line}\n")
        assert imported_modules(source) & SYNC_FORBIDDEN, line
