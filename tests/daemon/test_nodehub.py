"""The hand-over to the sync node: events run on the store thread, actions on the loop."""

from __future__ import annotations

import asyncio
import itertools
import threading
from pathlib import Path

from tests.sync.helpers import Device, household
from wifisync.daemon.nodehub import NodeHub
from wifisync.daemon.storethread import NodeStore, StoreThread
from wifisync.model.deviceid import short_device_id
from wifisync.store.sqlite import SqliteStore
from wifisync.sync import SyncSession
from wifisync.sync.node import SyncNode

_ids = itertools.count(1)


class WireLink:
    """A link whose frames go straight to the other end's hub (no socket): what the hub sees."""

    def __init__(self, hub: NodeHub, peer_id: bytes) -> None:
        self.id = next(_ids)
        self.hub = hub
        self.peer_id = peer_id
        self.name = short_device_id(peer_id)
        self.other: WireLink | None = None
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.threads: set[int] = set()  # where the hub called this link
        self.closed: tuple[int, str] | None = None
        self.in_sync = False
        self.records_behind: int | None = None

    def enqueue(self, frames: list[bytes]) -> None:
        """Frames the node sends: into the other end's inbox."""
        self.threads.add(threading.get_ident())
        assert self.other is not None
        for frame in frames:
            self.other.inbox.put_nowait(frame)

    def close_soon(self, code: int, reason: str) -> None:
        """The node closed the link."""
        self.threads.add(threading.get_ident())
        self.closed = (code, reason)

    def synced(self, _applied: int, _sent: int) -> None:
        """The initial exchange finished."""
        self.threads.add(threading.get_ident())
        self.in_sync = True

    def count_live(self, _records: int) -> None:
        """Live records were stored."""
        self.threads.add(threading.get_ident())

    async def pump(self) -> None:
        """Hand every received frame to the hub, one at a time."""
        while True:
            frame = await self.inbox.get()
            await self.hub.frame_in(self, frame)  # type: ignore[arg-type]


def _hub(device: Device, thread: StoreThread, seen_on: set[int]) -> NodeHub:
    store = device.store
    assert isinstance(store, SqliteStore)

    def new_session(peer: bytes, now: float) -> SyncSession:
        seen_on.add(threading.get_ident())  # the node makes sessions where it runs
        return SyncSession(device.replica, peer, now=now)

    node_store = NodeStore(store, device.identity, device.replica.vault_id)
    node = SyncNode(device.id, node_store, new_session, store.max_seq(device.id))
    return NodeHub(node, thread, node_store.local_tip, lambda _action: None, lambda _link: None)


async def test_two_hubs_sync_and_every_link_call_happens_on_the_loop(tmp_path: Path) -> None:
    paths = (tmp_path / f"d{n}.db" for n in itertools.count())
    a, b = household(2, lambda: SqliteStore(next(paths)))
    a.vault.add("from a")
    threads = [StoreThread(), StoreThread()]
    node_threads: set[int] = set()
    hubs = [_hub(a, threads[0], node_threads), _hub(b, threads[1], node_threads)]
    on_a, on_b = WireLink(hubs[0], b.id), WireLink(hubs[1], a.id)
    on_a.other, on_b.other = on_b, on_a
    pumps = [asyncio.create_task(link.pump()) for link in (on_a, on_b)]
    try:
        await hubs[0].link_up(on_a)  # type: ignore[arg-type]
        await hubs[1].link_up(on_b)  # type: ignore[arg-type]
        async with asyncio.timeout(10):
            while not (on_a.in_sync and on_b.in_sync):
                await asyncio.sleep(0.01)
        b.vault.add("live from b")
        assert await hubs[1].local_commit() == (1, False)
        async with asyncio.timeout(10):
            while a.state() != b.state():
                await asyncio.sleep(0.01)
    finally:
        for pump in pumps:
            pump.cancel()
        for hub in hubs:
            await hub.close()
        for thread in threads:
            thread.shutdown()
    loop_thread = threading.get_ident()
    assert on_a.threads == on_b.threads == {loop_thread}
    assert node_threads and loop_thread not in node_threads
    assert on_a.closed is None and on_b.closed is None
