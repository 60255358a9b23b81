"""The sync core stays sans-IO: no event loop, network or discovery library in it."""

from __future__ import annotations

import ast
from pathlib import Path

import wifisync.sync

FORBIDDEN = {"asyncio", "aiohttp", "zeroconf", "socket", "ssl", "selectors", "time"}


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module a source file imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_sync_package_imports_no_io_or_clock() -> None:
    sources = sorted(Path(wifisync.sync.__file__).parent.glob("*.py"))
    assert len(sources) >= 4
    for path in sources:
        assert not imported_modules(path) & FORBIDDEN, path.name
