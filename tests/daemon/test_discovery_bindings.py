"""Network safety: no code here may start mDNS on the host's interfaces by default."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ZEROCONF_CLASSES = {"Zeroconf", "AsyncZeroconf"}
# In tests, benchmarks and the demo, discovery must name lab or loopback interfaces:
# interfaces=None (or an empty list) means "every LAN interface" there.
DISCOVERY_CALLS = {"DiscoveryManager", "async_find_pairing"}


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _defaults_to_all_interfaces(value: ast.expr) -> bool:
    if isinstance(value, ast.Constant) and value.value is None:
        return True
    if isinstance(value, ast.List | ast.Tuple) and not value.elts:
        return True
    return isinstance(value, ast.Attribute) and value.attr in {"All", "Default"}


def violations(source: str, *, product: bool) -> Iterator[str]:
    """Each call in ``source`` that could bind mDNS to the host's real interfaces."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _called_name(node)
        keywords = {kw.arg: kw.value for kw in node.keywords}
        if name in ZEROCONF_CLASSES and "interfaces" not in keywords and "zc" not in keywords:
            yield f"line {node.lineno}: {name}() without interfaces="
        if product or name not in ZEROCONF_CLASSES | DISCOVERY_CALLS:
            continue
        if "interfaces" in keywords and _defaults_to_all_interfaces(keywords["interfaces"]):
            yield f"line {node.lineno}: {name}(interfaces=<all interfaces>)"
        elif name in DISCOVERY_CALLS and "interfaces" not in keywords:
            yield f"line {node.lineno}: {name}() without interfaces="


def checked_files() -> Iterator[tuple[Path, bool]]:
    """Every Python file of tests, bench and the package; product code may default to All."""
    for folder in ("tests", "bench"):
        for path in sorted((REPO / folder).rglob("*.py")):
            yield path, False
    for path in sorted((REPO / "wifisync").rglob("*.py")):
        yield path, path.name != "demo.py"


def test_checker_catches_default_bindings() -> None:
    bad = (
        "z = Zeroconf(\n)\n"  # over two lines: a grep for the call finds no line of this file
        "a = zeroconf.asyncio.AsyncZeroconf(unicast=False)\n"
        "b = AsyncZeroconf(interfaces=InterfaceChoice.All)\n"
        "m = DiscoveryManager(interfaces=None, port=1)\n"
        "f = async_find_pairing('1', timeout=1)\n"
    )
    assert len(list(violations(bad, product=False))) == 5
    assert len(list(violations(bad, product=True))) == 2
    good = (
        "z = AsyncZeroconf(interfaces=['10.231.7.2'])\n"
        "m = DiscoveryManager(interfaces=['wsv0'])\n"
    )
    assert list(violations(good, product=False)) == []


def test_no_code_starts_mdns_on_default_interfaces() -> None:
    found = [
        f"{path.relative_to(REPO)} {problem}"
        for path, product in checked_files()
        for problem in violations(path.read_text(), product=product)
    ]
    assert found == []
