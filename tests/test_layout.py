"""The package reads from the top: each module says what it is for; functions stay short."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "wifisync"
MAX_FUNCTION_LINES = 50  # from ``def`` to the last line, docstring included

# Longer functions, each with the reason it reads better whole (path under wifisync/: name).
LONG_FUNCTIONS = {
    "cli/commands_items.py:register": "argparse declarations of the item commands, one a line",
    "cli/commands_pairing.py:cmd_join": "join's steps in order (code, address or mDNS, "
    "exchange, re-admit or store); issue 12 lead's list: split with the CLI work",
    "daemon/daemon.py:__init__": "every attribute of the daemon set in one place, in the "
    "order the parts depend on each other",
    "store/sqlite.py:append_many": "the store's append rule; issue 12 D writes it once",
    "transfer/importers/bitwarden_json.py:_item": "one line per field of the source format",
    "transfer/importers/onepux.py:_item": "one line per field of the source format",
}


@functools.cache
def _modules() -> list[tuple[str, ast.Module]]:
    return [(path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text()))
            for path in sorted(PACKAGE.rglob("*.py"))]


def test_every_module_says_what_it_is_for_on_its_first_line() -> None:
    missing = [name for name, tree in _modules()
               if not (ast.get_docstring(tree) or "").split("\n", 1)[0].strip()]
    assert not missing, f"modules without a first docstring line: {missing}"


def test_no_function_is_longer_than_fifty_lines_without_a_written_reason() -> None:
    long = {}
    for name, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and f"{name}:{node.name}" not in LONG_FUNCTIONS:
                    long[f"{name}:{node.name}"] = lines
    assert not long, ("functions over 50 lines: shorten them, or list them in LONG_FUNCTIONS "
                      f"with the reason: {long}")
