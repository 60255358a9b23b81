"""An altered store is reported, never shown as valid: one flipped byte anywhere in a record."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import msgpack
import pytest

from tests.conftest import Cli

PARTS = {"header": 0, "ciphertext": 1, "signature": 2}
ITEM, MEMBER, VAULT_KEY = 1, 2, 3


def flip_byte(home: Path, kind: int, part: str, where: float, rehash: bool) -> None:
    """Flip one byte inside one part of the newest record of ``kind`` in the SQLite file.

    ``where`` is the position in the part (0 = first byte, 1 = last). With ``rehash`` the
    ``id`` column is rewritten to the new bytes' SHA-256, so the
    store's own hash check passes and only signature and AEAD checks are left to catch it.
    """
    db = sqlite3.connect(home / "data" / "vault.db")
    try:
        old_id, data = db.execute(
            "SELECT id, data FROM records WHERE kind = ? ORDER BY n DESC LIMIT 1", (kind,)
        ).fetchone()
        piece = msgpack.unpackb(data)[PARTS[part]]
        start = data.rindex(piece) if part == "signature" else data.index(piece)
        at = start + round(where * (len(piece) - 1))
        altered = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]
        new_id = hashlib.sha256(altered).digest() if rehash else old_id
        with db:
            db.execute("UPDATE records SET data = ?, id = ? WHERE id = ?",
                       (altered, new_id, old_id))
    finally:
        db.close()


def assert_detected(c: Cli, *command: str) -> None:
    r = c.run(*command)
    assert r.returncode == 1, (command, r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert "altered" in r.stderr or "corrupt" in r.stderr, r.stderr
    assert "wrong master password" not in r.stderr
    assert "Secret Mail" not in r.stdout and "hunter2" not in r.stdout


@pytest.mark.parametrize("rehash", [False, True], ids=["same-id", "rehashed-id"])
@pytest.mark.parametrize(("part", "where"), [
    ("header", 0.5), ("header", 1.0),
    ("ciphertext", 0.0), ("ciphertext", 1.0),
    ("signature", 0.0), ("signature", 1.0),
])
def test_a_flipped_byte_in_an_item_record_is_detected(initialised_cli: Cli, part: str,
                                                      where: float, rehash: bool) -> None:
    c = initialised_cli
    item = c.ok("add", "Secret Mail", "--field", "password=hunter2").strip()
    flip_byte(c.home, ITEM, part, where, rehash)
    assert_detected(c, "show", item)
    assert_detected(c, "list")


def test_an_altered_item_is_not_edited_but_can_be_deleted(initialised_cli: Cli) -> None:
    c = initialised_cli
    item = c.ok("add", "Secret Mail", "--field", "password=hunter2").strip()
    other = c.ok("add", "Other").strip()
    flip_byte(c.home, ITEM, "signature", 0.5, rehash=True)  # the newest item record: "Other"
    assert_detected(c, "edit", other, "--field", "password=x")
    assert_detected(c, "history", other)
    r = c.run("list")  # the readable item is listed, the other counted, with where to look
    assert r.returncode == 1 and "Secret Mail" in r.stdout
    assert "1 item(s) could not be read" in r.stderr and "wifisync verify" in r.stderr
    assert "Secret Mail" in c.ok("show", item)
    c.ok("rm", other)  # deleting does not decrypt what it deletes
    assert "Secret Mail" in c.ok("list")
    assert_detected(c, "verify")  # the altered record is still in the log, and named


@pytest.mark.parametrize("kind", [MEMBER, VAULT_KEY], ids=["member", "vault-key"])
@pytest.mark.parametrize("part", ["header", "ciphertext", "signature"])
def test_a_flipped_byte_in_a_vault_record_is_detected_before_unlocking(
        initialised_cli: Cli, kind: int, part: str) -> None:
    c = initialised_cli
    c.ok("add", "Secret Mail", "--field", "password=hunter2")
    flip_byte(c.home, kind, part, 0.5, rehash=True)
    assert_detected(c, "list")


def test_verify_walks_every_record_and_names_an_altered_one(initialised_cli: Cli) -> None:
    c = initialised_cli
    c.ok("add", "Secret Mail", "--field", "password=hunter2")
    c.ok("add", "Other")
    out = c.ok("verify")
    assert out.startswith("4 records checked") and "intact" in out
    flip_byte(c.home, ITEM, "ciphertext", 0.5, rehash=True)
    assert_detected(c, "verify")
