"""What the daemon says: journal-friendly lines, one line per sync, and SIGHUP reloads."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
from collections.abc import Callable

import aiohttp

from tests.integration.conftest import Device, wait_for
from tests.integration.test_access import _context_with, _member_name, _server_pem


def _start_on_journal(d: Device, *extra: str) -> None:
    """Start the daemon as systemd would with StandardError=journal: JOURNAL_STREAM names fd 2."""
    d.log_file.touch()
    st = os.stat(d.log_file)
    d.start(*extra, env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})


def test_on_the_journal_lines_carry_priorities_and_no_timestamps(
        devices: Callable[..., list[Device]]) -> None:
    a, b = devices(2)
    for i in range(3):
        a.add(f"item {i}")
    b.peers = [a]
    a.start()
    _start_on_journal(b)
    wait_for(lambda: "in sync with" in b.log(), 10, "the sync line")
    lines = b.log().splitlines()
    assert lines and all(re.match(r"<[0-7]>", line) for line in lines), lines
    assert not any(re.match(r"<\d>\d{4}-\d\d-\d\d", line) for line in lines)
    synced = next(line for line in lines if "in sync with" in line)
    # <6> is INFO: the records that came in (3 items + membership) and the time it took.
    assert re.fullmatch(r"<6>in sync with \w+: (\d+) records in, \d+ out, [\d.]+ s", synced)
    assert int(re.findall(r"(\d+) records in", synced)[0]) >= 3

    item = a.add("live one")
    wait_for(lambda: b.holds(item), 5, "the live push")
    wait_for(lambda: "<6>received 1 record(s) from" in b.log(), 5, "the live receive line")


def test_without_the_journal_lines_start_with_the_time(devices: Callable[..., list[Device]]
                                                       ) -> None:
    (a,) = devices(1)
    a.start()
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d INFO device ", a.log())


def test_sighup_reloads_the_config_and_says_what_changed(devices: Callable[..., list[Device]]
                                                         ) -> None:
    a, b = devices(2)
    a.start()
    b.start()
    assert b.proc is not None
    b.configure(peers=[a.address], log_level="debug")
    b.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded" in b.log(), 5, "the reload line")
    line = next(x for x in b.log().splitlines() if "reloaded" in x)
    assert line.endswith(f"log_level info -> debug; peers +{a.address}"), line
    wait_for(lambda: b.connected_to(a), 5, "the session with the peer added by the reload")
    assert b.proc.poll() is None

    b.configure(peers=[a.address], log_level="debug", mdns=True, interfaces=["nosuch0"])
    b.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "mdns stays off" in b.log(), 5, "the mdns part of the reload")
    assert "no such network interface: nosuch0" in b.log() and b.proc.poll() is None

    (b.cli.home / "config" / "config.toml").write_text("[daemon]\nlisten = 'nonsense'\n")
    b.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in b.log(), 5, "the refused reload")
    assert "daemon.listen" in b.log() and b.proc.poll() is None
    assert b.stop() == 0
    assert not b.home.control_socket.exists() and not b.home.daemon_lock.exists()


async def _hold_second_connection(port: int, context: ssl.SSLContext, server_name: str) -> None:
    """Open another /sync WebSocket with a member's certificate and hold it a moment."""
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"https://127.0.0.1:{port}/sync", ssl=context, server_hostname=server_name,
            autoping=False) as ws:
        await asyncio.sleep(0.5)
        await ws.close()


def test_a_routine_duplicate_connection_is_not_logged_at_info(
        devices: Callable[..., list[Device]]) -> None:
    a, b = devices(2, log_level="debug")
    b.peers = [a]  # only B dials: A's link from B is B's
    a.start()
    b.start()
    wait_for(lambda: a.connected_to(b) and b.connected_to(a), 10, "the session")
    # A second link from B's certificate: the newer of two links dialed by the same device
    # survives, so A closes the first one as the duplicate (4000), every time.
    asyncio.run(_hold_second_connection(
        a.port, _context_with(b.home.data_dir, _server_pem(a)), _member_name(a)))
    wait_for(lambda: "(4000)" in a.log(), 5, "the duplicate's line on A")
    a.stop()
    b.stop()
    duplicates = [line for line in (a.log() + b.log()).splitlines() if "(4000)" in line]
    assert duplicates and all(" DEBUG " in line for line in duplicates), duplicates
