"""`wifisync status`: is it syncing, with whom, since when, and why not, live or redrawn."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

from tests.integration.conftest import Device, free_port, wait_for
from wifisync.model.records import Kind
from wifisync.store.sqlite import SqliteStore

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _keys(obj: object) -> list[str]:
    """Every key path of a JSON value, to find duplicates across levels."""
    if isinstance(obj, dict):
        return [k for k in obj] + [f"{k}.{sub}" for k, v in obj.items() for sub in _keys(v)]
    return []


def test_status_json_answers_is_it_syncing(devices: Callable[..., list[Device]]) -> None:
    a, b, c = devices(3)
    a.add("one item")
    a.start()
    b.peers = [a]
    b.start()
    wait_for(lambda: any(p["in_sync"] for p in (b.status() or {}).get("peers", [])), 10,
             "B in sync with A")
    c.configure(peers=[f"127.0.0.1:{free_port()}"])  # C is never started: B cannot reach it
    status = json.loads(b.cli.ok("status", "--json"))
    assert set(status) == {"id", "name", "revoked", "standing", "vault", "daemon", "mdns", "peers",
                           "unlocked", "unlocked_until"}
    assert (status["unlocked"], status["unlocked_until"]) == (False, None)
    assert status["vault"]["items"] == 1 and status["revoked"] is False
    assert status["mdns"] == {"enabled": False, "active": False, "interfaces": [], "found": []}
    by_name = {p["name"]: p for p in status["peers"]}
    pa = by_name[a.name]
    assert pa["connected"] and pa["in_sync"] and pa["records_behind"] == 0
    assert ISO.fullmatch(pa["last_sync"]) and ISO.fullmatch(pa["last_seen"])
    assert pa["last_error"] is None
    pc = by_name[c.name]
    assert not pc["connected"] and not pc["in_sync"] and pc["last_sync"] is None

    text = b.cli.ok("status")
    assert re.search(rf"peer +\w+ +{a.name} +connected, in sync at 127\.0\.0\.1:\d+; "
                     r"last sync \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text), text
    assert re.search(rf"peer +\w+ +{c.name} +not connected", text), text

    a.stop()
    wait_for(lambda: not b.connected_to(a), 5, "B to see A go")
    # B keeps dialing A's address: the reason is in plain words, the sync time stays.
    def peer_a() -> dict[str, Any]:
        return next(p for p in json.loads(b.cli.ok("status", "--json"))["peers"]
                    if p["name"] == a.name)

    wait_for(lambda: peer_a()["last_error"], 10, "B's dial error")
    pa = peer_a()
    assert pa["last_error"].startswith("connection refused"), pa
    assert ISO.fullmatch(pa["last_sync"])
    assert "object at 0x" not in json.dumps(b.status())
    assert "last error: connection refused" in b.cli.ok("status")


def test_status_watch_redraws_in_place_until_interrupted(devices: Callable[..., list[Device]]
                                                         ) -> None:
    (a,) = devices(1)
    a.start()
    leader, follower = pty.openpty()
    proc = subprocess.Popen(a.cli.argv("status", "--watch", "--interval", "0.2"),
                            env=a.cli.env(), stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + 10
        while seen.count(b"\x1b[H\x1b[J") < 2 and time.monotonic() < deadline:
            if select.select([leader], [], [], 0.5)[0]:
                seen += os.read(leader, 65536)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    frames = seen.split(b"\x1b[H\x1b[J")[1:]
    assert len(frames) >= 2, seen
    assert b"daemon  running" in frames[0] and b"Ctrl-C" in frames[0]
    assert b"Traceback" not in seen


def test_status_watch_json_is_one_object_per_line(devices: Callable[..., list[Device]]) -> None:
    (a,) = devices(1)
    proc = subprocess.Popen(a.cli.argv("status", "--watch", "--json", "--interval", "0.2"),
                            env=a.cli.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    lines = [proc.stdout.readline(), proc.stdout.readline()]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0
    assert [json.loads(line)["daemon"]["running"] for line in lines] == [False, False]


def test_a_revoked_device_is_told_by_status_and_doctor(devices: Callable[..., list[Device]]
                                                       ) -> None:
    a, b = devices(2)
    a.cli.ok("revoke", b.name)
    source, target = SqliteStore(a.home.store_file), SqliteStore(b.home.store_file)
    try:  # the revocation reaches B as sync would bring it
        for item, _held in source.heads_of_kind(Kind.MEMBER):
            for record in source.versions(item):
                target.append(record)
    finally:
        source.close()
        target.close()
    assert json.loads(b.cli.ok("status", "--json"))["revoked"] is True
    assert "REVOKED this device was revoked" in b.cli.ok("status")
    assert json.loads(a.cli.ok("status", "--json"))["revoked"] is False
    doctor = b.cli.run("doctor")
    assert doctor.returncode == 1
    assert re.search(r"^FAIL  membership: this device \(\w+\) was revoked", doctor.stdout, re.M)
