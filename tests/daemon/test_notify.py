"""The notify socket: one byte in, the number pushed out; private, bounded, and quick to drop."""

from __future__ import annotations

import asyncio
import socket
import stat
from pathlib import Path

import pytest

from wifisync.client.control import notify_daemon
from wifisync.daemon import notify as notify_module
from wifisync.daemon.control import control_app, serve_control
from wifisync.daemon.notify import NotifySocket
from wifisync.home import Home


async def ask(path: Path, request: bytes) -> bytes:
    """What a client gets back for ``request`` ("" when the daemon closes unanswered)."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(request)
    writer.write_eof()  # said all it had (nothing, for b"")
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:  # closed with our junk unread
        return b""
    finally:
        writer.close()


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = Home.locate(str(tmp_path))
    home.ensure()
    return home


async def test_one_byte_asks_and_the_answer_is_how_many_were_pushed(home: Home) -> None:
    asked: list[bool] = []

    async def notify(wait: bool) -> int:
        asked.append(wait)
        return 3 if wait else 0

    server = NotifySocket(home.notify_socket, notify)
    server.start()
    try:
        assert stat.S_IMODE(home.notify_socket.stat().st_mode) == 0o600
        assert await ask(home.notify_socket, b"w") == b"3\n"
        assert await ask(home.notify_socket, b"n") == b"0\n"
        assert await asyncio.to_thread(notify_daemon, home) is True  # the CLI's own client
        assert await ask(home.notify_socket, b"POST /notify HTTP/1.1\r\n\r\n") == b""
        assert await ask(home.notify_socket, b"") == b""  # hung up without a byte
    finally:
        await server.close()
    assert asked == [True, False, True]  # junk and silence asked nothing
    assert not home.notify_socket.exists()


async def test_a_client_that_sends_nothing_is_dropped(home: Home,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify_module, "REQUEST_SECONDS", 0.05)

    async def notify(_wait: bool) -> int:
        raise AssertionError("nothing was asked")

    server = NotifySocket(home.notify_socket, notify)
    server.start()
    try:
        reader, writer = await asyncio.open_unix_connection(str(home.notify_socket))
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed by the daemon
        writer.close()
    finally:
        await server.close()


async def test_a_stale_socket_file_is_replaced(home: Home) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(home.notify_socket))
    stale.close()  # a daemon killed with -9 left it

    async def notify(_wait: bool) -> int:
        return 1

    server = NotifySocket(home.notify_socket, notify)
    server.start()
    try:
        assert await ask(home.notify_socket, b"w") == b"1\n"
    finally:
        await server.close()


async def test_a_daemon_without_the_notify_socket_is_told_over_http(home: Home) -> None:
    asked: list[bool] = []

    async def notify(wait: bool) -> int:
        asked.append(wait)
        return 1

    async def status() -> dict[str, object]:
        return {}

    runner = await serve_control(control_app(notify, status), home.control_socket)
    try:
        assert await asyncio.to_thread(notify_daemon, home, False) is True
    finally:
        await runner.cleanup()
    assert asked == [False]
