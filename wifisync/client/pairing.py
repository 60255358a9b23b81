"""`wifisync pair`'s side of the control socket: open a window, show the code, await the end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from wifisync.daemon.pairing import CONTROL_PATH, SESSION_TIMEOUT
from wifisync.errors import DaemonError, PairingError
from wifisync.home import Home

ANSWER_TIMEOUT = 10.0  # for the code itself
MAX_CONTROL_MESSAGE = 64 * 1024


async def request_pairing(home: Home, timeout: float | None,
                          show_code: Callable[[str], None], relay: bool = False
                          ) -> dict[str, Any]:
    """Ask the daemon for a window (``relay``: the joiner becomes a relay); ``show_code``
    gets its code; returns the outcome."""
    params = ([] if timeout is None else [f"timeout={timeout:g}"]) + (["relay=1"] if relay
                                                                      else [])
    query = "?" + "&".join(params) if params else ""
    connector = aiohttp.UnixConnector(path=str(home.control_socket))
    try:
        async with aiohttp.ClientSession(connector=connector) as session, session.ws_connect(
                f"http://wifisync{CONTROL_PATH}{query}", heartbeat=None,
                max_msg_size=MAX_CONTROL_MESSAGE) as ws:
            opened = await _json(ws, ANSWER_TIMEOUT)
            code, expires_in = opened.get("code"), opened.get("expires_in")
            if not isinstance(code, str) or not isinstance(expires_in, int | float):
                raise DaemonError("the daemon sent a malformed pairing answer")
            show_code(code)
            return await _json(ws, expires_in + SESSION_TIMEOUT + ANSWER_TIMEOUT)
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status == 404:
            raise DaemonError("the running daemon does not offer pairing; restart it") from None
        raise PairingError(f"the daemon refused to open a pairing window (HTTP {exc.status})"
                           ) from None
    except aiohttp.ClientConnectorError:
        raise DaemonError("no daemon is running for this device; start `wifisync daemon` "
                          "first") from None
    except aiohttp.ClientError as exc:
        raise DaemonError(f"lost the daemon while pairing: {exc}") from None
    except TimeoutError:
        raise DaemonError("the daemon did not answer in time") from None


async def _json(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    if msg.type is not aiohttp.WSMsgType.TEXT:
        raise DaemonError("the daemon stopped before the pairing window ended")
    try:
        data = msg.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise DaemonError("the daemon sent a malformed pairing answer")
    return data
