"""The daemon's control socket: HTTP over a Unix socket only this user can open.

``/notify`` says new local records were committed, so the daemon pushes them at once
without ever polling the store (the CLI says it on the lighter notify socket,
``daemon/notify.py``, and falls back to this); ``/status`` reports the live view.
Pairing adds its own endpoints here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

NOTIFY_PATH = "/notify"
STATUS_PATH = "/status"


def control_app(notify: Callable[[bool], Awaitable[int]],
                status: Callable[[], Awaitable[dict[str, Any]]]) -> web.Application:
    """The control endpoints; the daemon supplies what they do."""

    async def handle_notify(request: web.Request) -> web.Response:
        # ?wait=0: the CLI goes on writing (an attachment) while the daemon sends
        pushed = await notify(request.query.get("wait") != "0")
        return web.json_response({"pushed": pushed})

    async def handle_status(_request: web.Request) -> web.Response:
        return web.json_response(await status())

    app = web.Application(client_max_size=64 * 1024)
    app.router.add_post(NOTIFY_PATH, handle_notify)
    app.router.add_get(STATUS_PATH, handle_status)
    return app


async def serve_control(app: web.Application, path: Path) -> web.AppRunner:
    """Listen on ``path`` with mode 0600 from the first moment (a stale socket is replaced)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    old_umask = os.umask(0o177)
    try:
        await web.UnixSite(runner, str(path)).start()
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    return runner
