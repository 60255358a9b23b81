"""The daemon as a process: starts fast, refuses clearly, stops cleanly, reports its state."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import Device, free_port, wait_for


def _one_line_failure(d: Device, *args: str) -> str:
    r = subprocess.run(d.cli.argv("daemon", *args), env=d.cli.env(), capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wifisync: "), r.stderr
    return lines[0]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_daemon_with_status_0(devices: Callable[..., list[Device]],
                                                 sig: int) -> None:
    a, b = devices(2)
    b.peers = [a]
    a.start()
    b.start()
    wait_for(lambda: a.connected_to(b), 5, "the session")
    assert b.stop(sig) == 0
    assert not b.home.control_socket.exists()
    wait_for(lambda: not a.connected_to(b), 5, "A to see B go")


def _environment(pid: int) -> dict[bytes, bytes]:
    environ = Path(f"/proc/{pid}/environ")
    if not environ.exists():
        pytest.skip("no /proc on this system")
    return dict(v.partition(b"=")[::2] for v in environ.read_bytes().split(b"\0") if v)


def test_the_daemon_runs_on_the_c_allocator_as_the_process_it_was_started_as(
        devices: Callable[..., list[Device]]) -> None:
    """What a finished sync freed goes back to the system (pymalloc's arenas kept 15 MiB),
    also for a daemon started by hand (the service unit sets the allocator itself)."""
    (a,) = devices(1)
    a.start(env={"PYTHONMALLOC": None})
    assert a.proc is not None
    assert _environment(a.proc.pid).get(b"PYTHONMALLOC") == b"malloc"
    assert a.home.daemon_lock.read_text().strip() == str(a.proc.pid)  # started again in place
    assert a.stop() == 0


def test_the_daemon_process_runs_uvloop(devices: Callable[..., list[Device]]) -> None:
    """The daemon command starts its loop through ``run_daemon`` (nothing else loads uvloop)."""
    (a,) = devices(1)
    a.start()
    assert a.proc is not None
    maps = Path(f"/proc/{a.proc.pid}/maps")
    if not maps.exists():
        pytest.skip("no /proc on this system")
    assert "/uvloop/loop." in maps.read_text()


def test_the_daemons_of_a_session_never_load_the_cryptography_package(
        devices: Callable[..., list[Device]]) -> None:
    """TLS with pinned certificates, throwaway certificates and key derivation run on the
    standard library and libsodium: ``cryptography`` would add about 8 MiB to each daemon."""
    a, b = devices(2)
    b.peers = [a]
    a.start()
    b.start()
    wait_for(lambda: a.connected_to(b), 5, "the session")
    for d in (a, b):
        assert d.proc is not None
        maps = Path(f"/proc/{d.proc.pid}/maps")
        if not maps.exists():
            pytest.skip("no /proc on this system")
        assert "/cryptography/" not in maps.read_text()


def test_an_allocator_the_user_chose_is_kept(devices: Callable[..., list[Device]]) -> None:
    (a,) = devices(1)
    a.start(env={"PYTHONMALLOC": "pymalloc"})
    assert a.proc is not None
    assert _environment(a.proc.pid).get(b"PYTHONMALLOC") == b"pymalloc"


def test_a_port_in_use_is_one_clear_line(devices: Callable[..., list[Device]]) -> None:
    (a,) = devices(1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", a.port))
        taken.listen()
        assert "already in use" in _one_line_failure(a)


def test_a_second_daemon_on_the_same_home_is_refused(devices: Callable[..., list[Device]]
                                                     ) -> None:
    (a,) = devices(1)
    a.start()
    line = _one_line_failure(a, "--listen", f"127.0.0.1:{free_port()}")
    assert "already running" in line
    assert a.status() is not None  # the first one is untouched


def test_an_unreadable_store_is_one_clear_line(devices: Callable[..., list[Device]]) -> None:
    (a,) = devices(1)
    a.home.store_file.write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        a.home.store_file.with_name(a.home.store_file.name + suffix).unlink(missing_ok=True)
    line = _one_line_failure(a)
    assert str(a.home.store_file) in line and "not a database" in line, line


def test_a_home_without_a_vault_is_one_clear_line(make_cli: Callable[[str], object]) -> None:
    from tests.conftest import Cli

    cli = make_cli("empty")
    assert isinstance(cli, Cli)
    assert "init" in cli.fails("daemon", "--listen", f"127.0.0.1:{free_port()}")


def test_status_and_devices_work_with_and_without_the_daemon(
        devices: Callable[..., list[Device]]) -> None:
    a, b = devices(2)
    a.add("one item")
    stopped = json.loads(a.cli.ok("status", "--json"))
    assert stopped["daemon"] == {"running": False, "listen": None, "pid": None}
    assert stopped["id"] == a.device_id and stopped["name"] == a.name
    assert "items" not in stopped and stopped["vault"]["records"] >= 4
    assert stopped["vault"]["items"] == 1 and len(stopped["vault"]["id"]) == 32
    assert "daemon  not running" in a.cli.ok("status")
    assert [p["id"] for p in stopped["peers"]] == [b.device_id]
    assert stopped["peers"][0]["connected"] is False
    b.peers = [a]
    a.start()
    b.start()
    wait_for(lambda: a.connected_to(b), 5, "the session")
    running = json.loads(a.cli.ok("status", "--json"))
    assert running["daemon"]["running"] is True
    assert running["daemon"]["listen"] == a.address
    peer = running["peers"][0]
    assert peer["connected"] is True and peer["name"] == b.name and peer["last_seen"]
    assert peer["address"]
    assert running["vault"]["id"] == json.loads(b.cli.ok("status", "--json"))["vault"]["id"]
    listed = {d["id"]: d for d in json.loads(a.cli.ok("devices", "--json"))}
    assert listed[a.device_id]["self"] is True and listed[b.device_id]["connected"] is True
    assert b.proc is not None
    assert f"daemon  running (pid {b.proc.pid}), listening on {b.address}" in b.cli.ok("status")


def test_the_control_socket_is_private(devices: Callable[..., list[Device]]) -> None:
    (a,) = devices(1)
    a.start()
    assert a.home.control_socket.stat().st_mode & 0o777 == 0o600
