"""The CLI shares the store with other writers (another CLI, the daemon) without losing writes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import Cli

HOLD_WRITE_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


def test_a_write_waits_for_a_busy_store_and_succeeds(initialised_cli: Cli) -> None:
    c = initialised_cli
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, str(c.home / "data" / "vault.db")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline() == "locked\n"
        writer = subprocess.Popen(c.argv("add", "Waited"), env=c.env(), text=True,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        time.sleep(1.0)
        assert writer.poll() is None, "the write did not wait for the other writer"
        holder.stdin.write("\n")
        holder.stdin.flush()
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
    finally:
        holder.kill()
        holder.wait()
    assert [x["id"] for x in json.loads(c.ok("list", "--json"))] == [out.strip()]


def test_two_cli_processes_adding_at_once_lose_nothing(initialised_cli: Cli) -> None:
    c = initialised_cli

    def add_many(who: str) -> list[str]:
        return [c.ok("add", f"{who}-{i}", "--field", f"n={i}").strip() for i in range(10)]

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(add_many, ["a", "b"]))
    added = {item for ids in results for item in ids}
    assert len(added) == 20
    listed = json.loads(c.ok("list", "--json"))
    assert {x["id"] for x in listed} == added
    assert sorted(x["title"] for x in listed) == sorted(
        f"{w}-{i}" for w in "ab" for i in range(10))
