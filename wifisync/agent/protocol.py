"""The agent's wire format and where its socket lives; imported by the lean CLI paths too.

One JSON object per line each way, one request per connection. Light on purpose:
``wifisync get`` talks to the agent without importing any crypto or store module.
"""

from __future__ import annotations

import json
import os
import socket
from typing import TYPE_CHECKING, Any

from wifisync.errors import WifisyncError

if TYPE_CHECKING:
    from pathlib import Path

SOCKET_NAME = "agent.sock"
MAX_REQUEST = 64 * 1024
MAX_REPLY = 64 * 1024 * 1024  # a list of 100k summaries fits
REPLY_TIMEOUT_S = 30.0  # a first request after a large sync may re-read many items


def socket_path(runtime_dir: Path) -> Path:
    """The agent's socket in a home's runtime directory."""
    return runtime_dir / SOCKET_NAME


def _socket_file(runtime_dir: str | Path) -> str:
    return os.path.join(runtime_dir, SOCKET_NAME)


class AgentUnavailable(WifisyncError):
    """No agent answers for this home (locked): the caller asks for the password instead."""


def call(runtime_dir: str | Path, request: dict[str, Any],
         timeout: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
    """Send one request to the home's agent and return its reply object."""
    path = _socket_file(runtime_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError, PermissionError, OSError) as exc:
            raise AgentUnavailable(str(exc)) from None
        sock.sendall(json.dumps(request).encode() + b"\n")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_REPLY:
                raise AgentUnavailable("reply too long")
    except (TimeoutError, ConnectionResetError, BrokenPipeError) as exc:
        raise AgentUnavailable(str(exc)) from None
    finally:
        sock.close()
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError:
        raise AgentUnavailable("no reply") from None
    if not isinstance(reply, dict):
        raise AgentUnavailable("malformed reply")
    return reply
