"""Nothing readable is ever written: no title, field value or master password in any file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import Cli

OLD_PASSWORD = "Old-Master-Pass-q7Kx"
NEW_PASSWORD = "New-Master-Pass-v3Zw"
NEEDLES = [
    "Title-Wombat-4471", "Username-Quokka-9902", "Password-Numbat-1138",
    "Edited-Title-Bilby-5823", "Edited-Value-Dingo-6604", "Tag-Echidna-3317",
    "Card-Title-Kiwi-2290", "Pin-Value-Takahe-7741", OLD_PASSWORD, NEW_PASSWORD,
]


def assert_no_plaintext(home: Path) -> set[str]:
    """Search the raw bytes of every file under the home; returns the file names searched."""
    files = [p for p in home.rglob("*") if p.is_file()]
    for path in files:
        data = path.read_bytes()
        for needle in NEEDLES:
            for encoded in (needle.encode("utf-8"), needle.encode("utf-16-le"),
                            needle.casefold().encode("utf-8")):  # as title tags hash it
                assert encoded not in data, f"{needle!r} found in {path}"
    return {p.name for p in files}


def test_no_plaintext_reaches_the_disk(cli: Cli) -> None:
    cli.password = OLD_PASSWORD
    cli.init()
    # A second open connection (as a running daemon holds) keeps the WAL file in place.
    keeper = sqlite3.connect(cli.home / "data" / "vault.db")
    keeper.execute("SELECT COUNT(*) FROM records").fetchone()
    try:
        a = cli.ok("add", "Title-Wombat-4471", "--field", "user=Username-Quokka-9902",
                   "--field", "password=Password-Numbat-1138",
                   "--tag", "Tag-Echidna-3317").strip()
        cli.ok("add", "Card-Title-Kiwi-2290", "--type", "card",
               "--field", "pin=Pin-Value-Takahe-7741")
        cli.ok("edit", a, "--title", "Edited-Title-Bilby-5823",
               "--field", "password=Edited-Value-Dingo-6604")
        cli.ok("passwd", env={"WIFISYNC_NEW_PASSWORD": NEW_PASSWORD})
        cli.password = NEW_PASSWORD
        shown = json.loads(cli.ok("show", a, "--json"))
        assert shown["fields"]["password"] == "Edited-Value-Dingo-6604"  # the data is there
        # Lookups by title store title tags (docs/SECURITY.md): nothing readable either.
        assert json.loads(cli.ok("show", "edited-title-bilby-5823", "--json"))["id"] == a
        cli.ok("get", "Card-Title-Kiwi-2290", "--field", "pin")
        names = assert_no_plaintext(cli.home)
        assert {"vault.db", "vault.db-wal", "vault.db-shm", "device.key", "config.toml"} <= names
    finally:
        keeper.close()
    cli.ok("list")  # the last connection to close checkpoints the WAL into the main file
    assert_no_plaintext(cli.home)
