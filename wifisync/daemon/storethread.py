"""The one thread that owns the store and the sync node, so the event loop never waits on them.

SQLite commits, signature checks and batch building run here, one call at a time; that
single thread is also what serialises access to the store, the node and its sessions.
While it is idle (every call handed over has finished), the loop may run a small event
itself instead: the same order, two thread wake-ups fewer (``daemon/nodehub.py``).
:class:`NodeStore` is what the node asks of the store and the vault, answered here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from wifisync.model.identity import DeviceIdentity
from wifisync.model.membership import Member, current_members, named_devices
from wifisync.model.records import Record
from wifisync.store.sqlite import SqliteStore
from wifisync.vault.author import Author
from wifisync.vault.members import acknowledge

T = TypeVar("T")


class StoreThread:
    """Runs blocking store and node work in order, off the event loop.

    One thread and a queue, no executor: a call wakes the thread once, and its outcome
    wakes the loop once, set on the caller's own future. (An executor also takes a lock
    that both threads contend for on every call, and chains a second future.)
    """

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._closed = False
        self._handed = 0  # calls handed over (counted by the loop, the one caller)
        self._done = 0  # calls finished (counted by the store thread)
        self._returned = 0  # calls whose caller has resumed (counted by the loop)
        self._thread = threading.Thread(target=self._serve, name="wifisync-store", daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the store thread and wait for its result.

        A caller that stops waiting does not take the call back: handed over, it runs.
        """
        if self._closed:
            raise RuntimeError("the store thread was shut down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._handed += 1
        self._calls.put((loop, future, fn, args))
        try:
            return await future
        finally:
            self._returned += 1  # the caller acts on the result before it next yields

    def idle(self) -> bool:
        """Whether every call handed over has finished and its caller has resumed (and the
        thread still serves).

        Then the loop that hands the calls over may use the store and the node itself,
        without a hop, and still in order: the thread does nothing until the next call, and
        no earlier call's result waits on the loop to be acted on (its frames sent first).
        """
        return not self._closed and self._handed == self._done == self._returned

    def shutdown(self) -> None:
        """Finish the calls handed over so far and stop the thread."""
        self._closed = True
        self._calls.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            loop, future, fn, args = call
            try:
                outcome: tuple[object, BaseException | None] = (fn(*args), None)
            except BaseException as exc:  # the caller gets it, as from an executor
                outcome = (None, exc)
            self._done += 1  # the store is free for the loop from here
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, *outcome)
            del call, loop, future, fn, args, outcome  # hold no frame or result while idle


_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any],
              tuple[object, ...]]


def _settle(future: asyncio.Future[Any], result: object, exc: BaseException | None) -> None:
    """On the loop: hand the call's outcome to its caller (unless it stopped waiting)."""
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class NodeStore:
    """The sync node's view of this device's SQLite store and vault (on the store thread)."""

    def __init__(self, store: SqliteStore, identity: DeviceIdentity, vault_id: bytes) -> None:
        self.store = store
        self.identity = identity
        self.vault_id = vault_id
        self.self_id = identity.device_id

    def local_after(self, seq: int, limit: int, max_bytes: int) -> list[Record]:
        """This device's own records after ``seq``."""
        return self.store.records_after(self.self_id, seq, limit, max_bytes)

    def local_tip(self) -> int:
        """The seq of this device's latest record (one indexed read)."""
        return self.store.max_seq(self.self_id)

    def get_record(self, record_id: bytes) -> Record | None:
        """One record by ID."""
        return self.store.get_record(record_id)

    def current_members(self) -> dict[bytes, Member]:
        """The current members as the store says now."""
        return current_members(self.store)

    def revoked(self, device: bytes) -> bool:
        """Whether the store names ``device`` as a revoked member."""
        member = named_devices(self.store).get(device)
        return member is not None and member.revoked

    def acknowledge_revocations(self) -> bool:
        """Sign what revocations learned meanwhile call for; whether anything was written."""
        return bool(acknowledge(Author(self.store, self.identity, self.vault_id)))

    def release_memory(self) -> None:
        """Keep nothing of a finished sync: SQLite's page cache, and the heap glibc holds on to."""
        self.store.release_memory()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc only; elsewhere nothing to do
