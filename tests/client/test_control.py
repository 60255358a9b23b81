"""The CLI's notify is cheap and harmless when no daemon runs."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from wifisync.client.control import _parse_response, notify_daemon
from wifisync.home import Home


def test_notify_without_a_daemon_returns_false_at_once(tmp_path: Path) -> None:
    home = Home.locate(str(tmp_path))
    started = time.perf_counter()
    assert notify_daemon(home) is False
    assert time.perf_counter() - started < 0.5


def test_notify_with_a_stale_socket_returns_false(tmp_path: Path) -> None:
    home = Home.locate(str(tmp_path))
    home.ensure()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(home.control_socket))
    stale.close()  # the file stays, nobody listens: a daemon killed with -9
    assert notify_daemon(home) is False


def test_chunked_and_plain_answers_parse() -> None:
    plain = b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"pushed":1}'
    assert _parse_response(plain) == (200, {"pushed": 1})
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n")
    assert _parse_response(chunked) == (200, {"a": 1})
