"""The one thread that owns the store and the sync node, so the event loop never blocks on them.

SQLite commits, signature checks and batch building run here, one call at a time; that
single thread is also what serialises access to the store, the node and its sessions.
:class:`NodeStore` is what the node asks of the store and the vault, answered here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from wifisync.model.identity import DeviceIdentity
from wifisync.model.membership import Member, current_members, named_devices
from wifisync.model.records import Record
from wifisync.store.sqlite import SqliteStore
from wifisync.vault.author import Author
from wifisync.vault.members import acknowledge

T = TypeVar("T")


class StoreThread:
    """Runs blocking store and node work in order, off the event loop."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wifisync-store")

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the store thread and wait for its result."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def shutdown(self) -> None:
        """Finish the call in flight and stop the thread."""
        self._pool.shutdown(wait=True)


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
