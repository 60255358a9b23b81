"""No memo cache keeps a secret: cached functions take public data only."""

from __future__ import annotations

import ast
from pathlib import Path

import wifisync

PACKAGE = Path(wifisync.__file__).parent
SECRET_WORDS = ("key", "password", "secret", "seed")
CACHE_DECORATORS = {"lru_cache", "cache"}


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Attribute):
        return target.attr
    return target.id if isinstance(target, ast.Name) else ""


def cached_functions() -> list[tuple[str, ast.FunctionDef]]:
    """Every function of the package decorated with a memo cache, with its module path."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                    _decorator_name(d) in CACHE_DECORATORS for d in node.decorator_list):
                found.append((str(path.relative_to(PACKAGE)), node))
    return found


def test_no_cache_is_keyed_by_a_secret() -> None:
    """A cache keyed by a vault key would keep it in memory after the vault is locked."""
    assert cached_functions()  # the scan sees the certificate caches
    for module, fn in cached_functions():
        for arg in fn.args.args + fn.args.kwonlyargs:
            assert not any(word in arg.arg.lower() for word in SECRET_WORDS), \
                f"{module}: {fn.name}({arg.arg}) is cached"
