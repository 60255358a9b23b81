"""A stranger holding many connections breaks nothing; no core dumps; a bounded flood."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Device, wait_for

STRANGER = "127.0.0.2"  # a source of its own on loopback (members dial from 127.0.0.1)


def open_files(pid: int) -> int:
    """How many file descriptors a process holds."""
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def stranger_flood(port: int, idle: int, half_handshakes: int) -> Iterator[list[socket.socket]]:
    """Idle TCP connections and half-sent TLS ClientHellos from 127.0.0.2, closed at the end."""
    held: list[socket.socket] = []
    hello_start = bytes.fromhex("160301020001000200")  # a record header and a partial hello
    try:
        for i in range(idle + half_handshakes):
            s = socket.socket()
            s.setblocking(False)
            s.bind((STRANGER, 0))
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            held.append(s)
            if i >= idle:
                with contextlib.suppress(OSError):
                    time.sleep(0.001)
                    s.send(hello_start)
        yield held
    finally:
        for s in held:
            s.close()


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_members_sync_and_the_cli_works_while_a_stranger_holds_hundreds_of_connections(
        devices: Callable[..., list[Device]]) -> None:
    a, b = devices(2)
    b.peers = [a]
    a.start()
    assert a.proc is not None
    base = open_files(a.proc.pid)
    with stranger_flood(a.port, idle=400, half_handshakes=100):
        time.sleep(0.5)
        assert open_files(a.proc.pid) < base + 200  # the caps, not the flood, bound the files
        b.start()
        wait_for(lambda: a.connected_to(b) and b.connected_to(a), 5, "the member's session")
        item = b.add("written during a flood")
        wait_for(lambda: a.holds(item), 5, "the change to arrive")
        assert a.status() is not None  # the CLI's control socket still answers
    wait_for(lambda: open_files(a.proc.pid) <= base + 10, 10, "open files back to base")


def test_core_dumps_are_off_for_the_daemon_and_the_cli(
        devices: Callable[..., list[Device]]) -> None:
    (a,) = devices(1)
    a.start()
    assert a.proc is not None
    limits = Path(f"/proc/{a.proc.pid}/limits").read_text()
    [core] = [line for line in limits.splitlines() if line.startswith("Max core file size")]
    assert core.split()[4:6] == ["0", "0"]
    out = a.cli.ok("status")  # the CLI runs the same entry point
    assert out


async def _hold_pairing_connections(port: int, count: int, joiner: list[str],
                                    env: dict[str, str]) -> tuple[int, str, int]:
    """``count`` silent WebSockets to /pair from 127.0.0.2 held while ``joiner`` runs."""
    import asyncio

    import aiohttp

    from wifisync.client.join import joiner_tls_context, pair_url
    from wifisync.net.tls import SERVER_NAME

    connector = aiohttp.TCPConnector(local_addr=(STRANGER, 0), limit=0)
    held = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets = []
        for _ in range(count):
            with contextlib.suppress(aiohttp.ClientError, OSError):
                sockets.append(await session.ws_connect(
                    pair_url("127.0.0.1", port), ssl=joiner_tls_context(),
                    server_hostname=SERVER_NAME, heartbeat=None, autoping=False))
        held = sum(1 for ws in sockets if not ws.closed)
        proc = await asyncio.create_subprocess_exec(
            *joiner, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        for ws in sockets:
            await ws.close()
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode(), held


def test_a_stranger_holding_pairing_connections_does_not_block_the_joiner(
        devices: Callable[..., list[Device]], tmp_path: Path) -> None:
    """Before: four anonymous connections held the four pairing slots and the joiner waited."""
    import asyncio

    from tests.cli.test_pairing import Pairing
    from tests.conftest import Cli

    (a,) = devices(1)
    a.start()
    pairing = Pairing(a, "--timeout", "60")
    newcomer = Device(Cli(tmp_path / "newcomer"), "newcomer")
    newcomer.configure()
    code, output, held = asyncio.run(_hold_pairing_connections(
        a.port, 12, newcomer.cli.argv("join", pairing.code, "--address", a.address),
        newcomer.cli.env()))
    assert held >= 4, "the stranger should hold at least as many as the old slots"
    assert code == 0, output
    assert pairing.finish()[0] == 0
