"""Why a dial failed, in words a person reads in `wifisync status` (no object reprs)."""

from __future__ import annotations

import errno
import socket
import ssl

import aiohttp

_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused (no wifisync daemon listening there?)",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "no answer (timed out)",
    errno.ECONNRESET: "connection reset",
}


def plain_error(exc: BaseException) -> str:
    """One short line for a failed dial or a dropped connection."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return plain_error(exc.os_error)
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"it refused the sync connection (HTTP {exc.status})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "it hung up during the handshake"
    if isinstance(exc, TimeoutError):
        return "no answer (timed out)"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc.strerror or type(exc).__name__}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return _ERRNO_WORDS.get(exc.errno) or (exc.strerror or str(exc)).lower()
    return str(exc) or type(exc).__name__
