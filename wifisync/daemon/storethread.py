"""One thread that owns the store and every sync session, so the event loop never blocks on them.

SQLite commits, signature checks and batch building run here, one call at a time;
that single thread is also what serialises access to the store and the sessions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class StoreWorker:
    """Runs blocking store and session work in order, off the event loop."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wifisync-store")

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the worker thread and wait for its result."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def shutdown(self) -> None:
        """Finish the call in flight and stop the thread."""
        self._pool.shutdown(wait=True)
