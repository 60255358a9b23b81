"""The unlock agent through real processes: socket, peer check, key handling, lock, timeout."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, Cli
from wifisync.agent.protocol import call, socket_path
from wifisync.model.identity import DeviceIdentity
from wifisync.store import SqliteStore
from wifisync.vault.unlocked import Vault


def agent_pid(cli: Cli) -> int | None:
    try:
        reply = call(cli.home / "run", {"op": "status"}, timeout=2)
    except Exception:
        return None
    return int(reply["pid"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (the agent's parent, the CLI, has exited).
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() \
        else "X"
    return state != "Z"


def wait_gone(pid: int, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def unlocked_cli(initialised_cli: Cli) -> Iterator[Cli]:
    """An initialised home with an item, unlocked for 5 minutes; locked again afterwards."""
    c = initialised_cli
    c.ok("add", "Home router", "--field", "username=admin", "--field", "password=Rtr-Pw-8812",
         "--tag", "net")
    c.ok("unlock", "--timeout", "5m")
    pid = agent_pid(c)
    assert pid is not None
    try:
        yield c
    finally:
        c.run("lock")
        if alive(pid):
            os.kill(pid, 9)


def vault_key(cli: Cli) -> bytes:
    store = SqliteStore(cli.home / "data" / "vault.db")
    try:
        return Vault.unlock(store, DeviceIdentity.load(cli.home / "data"), PASSWORD).vault_key
    finally:
        store.close()


def test_unlocked_commands_need_no_password(unlocked_cli: Cli) -> None:
    c = unlocked_cli
    c.password = None  # no WIFISYNC_PASSWORD, empty stdin: only the agent can open the vault
    assert c.ok("get", "home router") == "Rtr-Pw-8812\n"
    assert "Home router" in c.ok("list")
    added = c.ok("add", "Mail", "--field", "password=m").strip()
    assert c.ok("get", added) == "m\n"  # the agent sees writes made since it started
    assert c.ok("get", "HOME ROUTER", "--field", "username") == "admin\n"
    status = json.loads(c.ok("status", "--json"))
    assert status["unlocked"] is True and status["unlocked_until"].endswith("Z")
    assert "unlocked until" in c.ok("status")


def test_lock_forgets_the_key_and_the_agent_exits(unlocked_cli: Cli) -> None:
    c = unlocked_cli
    pid = agent_pid(c)
    assert pid is not None
    c.ok("lock")
    assert wait_gone(pid)
    assert not socket_path(c.home / "run").exists()
    c.password = None
    assert "no master password" in c.fails("get", "Home router")
    status = json.loads(c.ok("status", "--json"))
    assert status["unlocked"] is False and status["unlocked_until"] is None


def test_the_timeout_locks_and_the_agent_exits(initialised_cli: Cli) -> None:
    c = initialised_cli
    c.ok("add", "Mail", "--field", "password=m")
    c.ok("unlock", "--timeout", "2s")
    pid = agent_pid(c)
    assert pid is not None
    try:
        assert wait_gone(pid, within=8)
        c.password = None
        assert "no master password" in c.fails("get", "Mail")
    finally:
        if alive(pid):
            os.kill(pid, 9)


def test_without_timeout_the_agent_ends_with_the_runtime_dir(initialised_cli: Cli) -> None:
    c = initialised_cli
    c.ok("unlock", "--timeout", "0")
    pid = agent_pid(c)
    assert pid is not None
    try:
        assert json.loads(c.ok("status", "--json"))["unlocked_until"] is None
        socket_path(c.home / "run").unlink()  # what a logout does to $XDG_RUNTIME_DIR
        assert wait_gone(pid)
    finally:
        if alive(pid):
            os.kill(pid, 9)


def test_a_wrong_password_starts_no_agent(initialised_cli: Cli) -> None:
    c = initialised_cli
    assert c.fails("unlock", env={"WIFISYNC_PASSWORD": "not it"}) == \
        "wifisync: wrong master password"
    assert not socket_path(c.home / "run").exists()


def test_socket_is_private_and_the_agent_not_dumpable(unlocked_cli: Cli) -> None:
    c = unlocked_cli
    path = socket_path(c.home / "run")
    assert stat.S_ISSOCK(path.stat().st_mode) and path.stat().st_mode & 0o777 == 0o600
    reply = call(c.home / "run", {"op": "status"})
    assert reply["dumpable"] is False  # prctl(PR_GET_DUMPABLE) inside the agent
    pid = reply["pid"]
    core = next(line.split() for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
                if line.startswith("Max core file size"))
    assert core[4:6] == ["0", "0"]  # no core file, soft or hard
    locked_kib = next(int(line.split()[1]) for line in
                      Path(f"/proc/{pid}/status").read_text().splitlines()
                      if line.startswith("VmLck:"))
    assert locked_kib >= 4  # the key's page is locked in RAM


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_another_user_gets_nothing_even_through_an_open_socket(unlocked_cli: Cli) -> None:
    run_dir = unlocked_cli.home / "run"
    # Open the way on purpose (a world-searchable directory, a 0666 socket): the
    # SO_PEERCRED check alone must refuse.
    way = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        os.chmod(way, 0o755)
        os.link(socket_path(run_dir), way / "agent.sock")
        os.chmod(way / "agent.sock", 0o666)
        probe = (
            "import os, socket, sys\n"
            "os.setgid(65534); os.setuid(65534)\n"
            "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)\n"
            "try:\n"
            "    s.sendall(b'{\"op\": \"key\"}\\n'); data = s.recv(4096)\n"
            "except (BrokenPipeError, ConnectionResetError):\n"  # closed before reading
            "    data = b''\n"
            "sys.stdout.write(repr(data))\n")
        out = subprocess.run([sys.executable, "-c", probe, str(way / "agent.sock")],
                             capture_output=True, text=True, timeout=30, check=False)
        assert out.returncode == 0, out.stderr
    finally:
        shutil.rmtree(way)
    assert out.stdout == "b''"  # connected, and closed without a word
    # Our own uid still gets an answer, so the refusal above is the uid check.
    assert call(run_dir, {"op": "status"})["ok"] is True


def test_no_password_or_key_in_files_environment_or_argv(unlocked_cli: Cli) -> None:
    c = unlocked_cli
    key = vault_key(c)
    pid = agent_pid(c)
    needles = [PASSWORD.encode(), key, key.hex().encode()]
    for path in c.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(n in data for n in needles), path
    for name in ("environ", "cmdline"):
        data = Path(f"/proc/{pid}/{name}").read_bytes()
        assert not any(n in data for n in needles), name
        assert b"WIFISYNC_PASSWORD" not in data


def test_requests_are_bounded_and_malformed_ones_refused(unlocked_cli: Cli) -> None:
    path = socket_path(unlocked_cli.home / "run")
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(path))
        s.sendall(b"not json\n")
        s.settimeout(5)
        reply = json.loads(s.recv(4096))
    assert reply["ok"] is False
    assert call(unlocked_cli.home / "run", {"op": "nope"})["ok"] is False
