"""The CLI's side of the control socket: a tiny blocking HTTP/1.1 client over a Unix socket.

It imports nothing heavy, so a CLI command pays well under a millisecond to tell a
running daemon about its commit, and nothing when no daemon runs.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from wifisync.errors import DaemonError
from wifisync.home import Home

NOTIFY_TIMEOUT = 2.0
REQUEST_TIMEOUT = 5.0
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


def control_request(home: Home, method: str, path: str, body: Any = None,
                    timeout: float = REQUEST_TIMEOUT) -> tuple[int, Any] | None:
    """Send one request to this home's daemon; (status, parsed JSON or None), None if none runs."""
    payload = b"" if body is None else json.dumps(body).encode()
    head = (f"{method} {path} HTTP/1.1\r\nHost: wifisync\r\nConnection: close\r\n"
            f"Content-Length: {len(payload)}\r\n")
    if body is not None:
        head += "Content-Type: application/json\r\n"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(home.control_socket))
        except (FileNotFoundError, ConnectionRefusedError):
            return None  # no daemon, or a stale socket of one that died
        sock.sendall(head.encode() + b"\r\n" + payload)
        chunks = []
        total = 0
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_RESPONSE_BYTES:
                raise DaemonError("the daemon's answer is too large")
    except TimeoutError:
        raise DaemonError(f"the daemon did not answer within {timeout:.0f} s") from None
    except OSError as exc:
        raise DaemonError(f"cannot talk to the daemon: {exc.strerror or exc}") from None
    finally:
        sock.close()
    return _parse_response(b"".join(chunks))


def _parse_response(raw: bytes) -> tuple[int, Any]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if not sep or len(status_line) < 2 or not status_line[1].isdigit():
        raise DaemonError("the daemon sent a malformed answer")
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(b":") for line in head.split(b"\r\n")[1:])}
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = _dechunk(body)
    try:
        return int(status_line[1]), (json.loads(body) if body else None)
    except ValueError:
        return int(status_line[1]), None


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return bytes(out)


def notify_daemon(home: Home, wait: bool = True) -> bool:
    """Tell this home's daemon that new local records were committed; False when none runs.

    Without ``wait`` the daemon answers at once and sends in the background. One byte on
    the notify socket (``daemon/notify.py``); a daemon without one is asked over HTTP.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(NOTIFY_TIMEOUT)
    try:
        sock.connect(str(home.notify_socket))
        sock.sendall(b"w" if wait else b"n")
        answer = sock.recv(32)
    except (FileNotFoundError, ConnectionRefusedError):
        return _notify_over_http(home, wait)  # no daemon, or one without the notify socket
    except OSError:  # timed out, or the daemon went away meanwhile
        return False
    finally:
        sock.close()
    return answer.endswith(b"\n") and answer[:-1].isdigit()


def _notify_over_http(home: Home, wait: bool) -> bool:
    path = "/notify" if wait else "/notify?wait=0"
    try:
        answer = control_request(home, "POST", path, timeout=NOTIFY_TIMEOUT)
    except DaemonError:
        return False
    return answer is not None and answer[0] == 200


def daemon_status(home: Home) -> dict[str, Any] | None:
    """The running daemon's live view, or None when no daemon runs for this home."""
    answer = control_request(home, "GET", "/status")
    if answer is None:
        return None
    status, body = answer
    if status != 200 or not isinstance(body, dict):
        raise DaemonError(f"the daemon answered status {status}")
    return body
