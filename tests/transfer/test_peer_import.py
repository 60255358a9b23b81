"""An import is ordinary records: it reaches a connected peer through the running daemons."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.integration.conftest import Device, devices, wait_for  # noqa: F401 - the fixture
from tests.transfer import samples

ITEMS = 500


def test_an_import_on_one_device_arrives_on_a_connected_peer(
        devices: Callable[..., list[Device]], tmp_path: Path) -> None:  # noqa: F811
    a, b = devices(2)
    b.peers = [a]
    a.start()
    b.start()
    wait_for(lambda: a.connected_to(b) and b.connected_to(a), 10, "the session")
    doc = dict(samples.BITWARDEN_JSON)
    doc["items"] = [*doc["items"], *(
        {"id": f"bulk-{i}", "type": 1, "name": f"Site {i}",
         "login": {"username": f"user{i}", "password": f"pw-{i}"}} for i in range(ITEMS))]
    src = tmp_path / "bitwarden.json"
    src.write_text(json.dumps(doc))
    assert f"{ITEMS + 4} imported" in a.cli.ok("import", str(src))
    wait_for(lambda: b.record_count() == a.record_count(), 20, "the import on B")
    on_b = json.loads(b.cli.ok("list", "--json"))
    assert len(on_b) == ITEMS + 4
    shown = json.loads(b.cli.ok("show", "Home Router", "--json"))
    assert shown["fields"]["PIN"] == "1234" and shown["fields"]["url 2"] == (
        "https://router.local")
