"""The hand-over to the sync node: events run on the store thread, actions on the loop."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from tests.sync.helpers import Device, craft, household
from wifisync.daemon.inbox import Inbox, read_frames
from wifisync.daemon.nodehub import INLINE_LOCAL_RECORDS, INLINE_PUSH_BYTES, NodeHub
from wifisync.daemon.storethread import NodeStore, StoreThread
from wifisync.model.deviceid import short_device_id
from wifisync.model.records import Record
from wifisync.store.sqlite import SqliteStore
from wifisync.sync import SyncSession
from wifisync.sync.messages import Push, encode_message
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
            self.hub.arrived(self, frame)  # type: ignore[arg-type]
            await self.hub.frame_in(self, frame)  # type: ignore[arg-type]


def _hub(device: Device, thread: StoreThread, seen_on: set[int],
         inbox: Inbox | None = None) -> NodeHub:
    store = device.store
    assert isinstance(store, SqliteStore)

    def new_session(peer: bytes, now: float) -> SyncSession:
        seen_on.add(threading.get_ident())  # the node makes sessions where it runs
        return SyncSession(device.replica, peer, now=now)

    node_store = NodeStore(store, device.identity, device.replica.vault_id)
    node = SyncNode(device.id, node_store, new_session, store.max_seq(device.id))
    return NodeHub(node, thread, node_store.local_tip, lambda _action: None, lambda _link: None,
                   inbox)


async def test_two_hubs_sync_and_every_link_call_happens_on_the_loop(tmp_path: Path) -> None:
    node_threads: set[int] = set()
    async with synced_pair(tmp_path, node_threads, written="from a") as pair:
        pair.b.vault.add("live from b")
        assert await pair.hubs[1].local_commit() == (1, False)
        async with asyncio.timeout(10):
            while pair.a.state() != pair.b.state():
                await asyncio.sleep(0.01)
    loop_thread = threading.get_ident()
    assert pair.on_a.threads == pair.on_b.threads == {loop_thread}
    assert node_threads and loop_thread not in node_threads
    assert pair.on_a.closed is None and pair.on_b.closed is None


class Pair:
    """Two hubs on their own store threads, in sync over wire links (``b`` is checked)."""

    def __init__(self, a: Device, b: Device, hubs: list[NodeHub], threads: list[StoreThread],
                 on_a: WireLink, on_b: WireLink) -> None:
        self.a, self.b, self.hubs, self.threads = a, b, hubs, threads
        self.on_a, self.on_b = on_a, on_b
        self.ran: list[tuple[str, int]] = []  # (event, thread) as b's node handled them

    def watch(self, hub: NodeHub, name: str) -> None:
        """Note where (on which thread) and in what order ``hub``'s node handles ``name``."""
        real: Callable[..., Any] = getattr(hub.node, name)

        def noted(*args: Any) -> Any:
            self.ran.append((name, threading.get_ident()))
            return real(*args)

        setattr(hub.node, name, noted)


@contextlib.asynccontextmanager
async def synced_pair(tmp_path: Path, node_threads: set[int] | None = None,
                      written: str | None = None, items: int = 0,
                      inbox: Inbox | None = None) -> AsyncIterator[Pair]:
    """Two devices in sync through their hubs (``a`` wrote ``written`` and ``items`` more
    before they met; the threads the nodes ran on go to ``node_threads``; ``b`` keeps its
    batches in ``inbox``); the pumps run until the block ends."""
    paths = (tmp_path / f"d{n}.db" for n in itertools.count())
    a, b = household(2, lambda: SqliteStore(next(paths)))
    if written is not None:
        a.vault.add(written)
    if items:
        assert isinstance(a.store, SqliteStore)
        with a.store.transaction():
            for i in range(items):
                a.vault.add(f"item {i}")
    seen_on = set() if node_threads is None else node_threads
    threads = [StoreThread(), StoreThread()]
    hubs = [_hub(a, threads[0], seen_on), _hub(b, threads[1], seen_on, inbox)]
    on_a, on_b = WireLink(hubs[0], b.id), WireLink(hubs[1], a.id)
    on_a.other, on_b.other = on_b, on_a
    pumps = [asyncio.create_task(link.pump()) for link in (on_a, on_b)]
    try:
        await hubs[0].link_up(on_a)  # type: ignore[arg-type]
        await hubs[1].link_up(on_b)  # type: ignore[arg-type]
        async with asyncio.timeout(10):
            while not (on_a.in_sync and on_b.in_sync):
                await asyncio.sleep(0.01)
        yield Pair(a, b, hubs, threads, on_a, on_b)
    finally:
        for pump in pumps:
            pump.cancel()
        for hub in hubs:
            await hub.close()
        for thread in threads:
            thread.shutdown()


def push_frame(*records: Record) -> bytes:
    return encode_message(Push(tuple(r.encoded for r in records)))


async def test_a_live_push_is_checked_on_the_loop_and_a_forged_one_is_refused(
        tmp_path: Path) -> None:
    async with synced_pair(tmp_path) as pair:
        pair.watch(pair.hubs[1], "frame_in")
        good = craft(pair.a, b"i" * 16, body=b"typed on a")
        forged = Record.create(good.header, good.body + b"!", good.signature)
        assert len(push_frame(forged)) <= INLINE_PUSH_BYTES
        await pair.hubs[1].frame_in(pair.on_b, push_frame(forged))  # type: ignore[arg-type]
        assert not pair.b.store.has_record(forged.id)
        await pair.hubs[1].frame_in(pair.on_b, push_frame(good))  # type: ignore[arg-type]
        assert pair.b.store.has_record(good.id)
        assert pair.on_b.closed is None  # a bad signature is refused, not a crash
    loop_thread = threading.get_ident()
    assert pair.ran == [("frame_in", loop_thread)] * 2  # no hop: both checked right here


async def test_a_push_while_the_store_thread_is_busy_waits_its_turn(tmp_path: Path) -> None:
    async with synced_pair(tmp_path) as pair:
        pair.watch(pair.hubs[1], "frame_in")
        thread = pair.threads[1]
        gate = threading.Event()
        busy = asyncio.ensure_future(thread.run(
            lambda: (gate.wait(5), pair.ran.append(("busy", threading.get_ident())))))
        await asyncio.sleep(0)
        first = craft(pair.a, b"j" * 16, body=b"first")
        arriving = asyncio.ensure_future(
            pair.hubs[1].frame_in(pair.on_b, push_frame(first)))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert not pair.b.store.has_record(first.id)  # queued behind the busy call
        gate.set()
        await asyncio.gather(busy, arriving)
        assert pair.b.store.has_record(first.id)
        pair.a.store.append_many([first])  # a's next record follows it
        second = craft(pair.a, b"j" * 16, body=b"second")
        await pair.hubs[1].frame_in(pair.on_b, push_frame(second))  # type: ignore[arg-type]
        assert pair.b.store.has_record(second.id)
    store_thread, loop_thread = pair.ran[0][1], threading.get_ident()
    assert pair.ran == [("busy", store_thread), ("frame_in", store_thread),
                        ("frame_in", loop_thread)]


async def test_large_or_early_frames_go_to_the_store_thread(tmp_path: Path) -> None:
    async with synced_pair(tmp_path) as pair:
        pair.watch(pair.hubs[1], "frame_in")
        big = craft(pair.a, b"k" * 16, body=b"x" * INLINE_PUSH_BYTES)
        await pair.hubs[1].frame_in(pair.on_b, push_frame(big))  # type: ignore[arg-type]
        pair.a.store.append_many([big])
        pair.on_b.in_sync = False  # as while the initial exchange runs
        small = craft(pair.a, b"l" * 16, body=b"small")
        await pair.hubs[1].frame_in(pair.on_b, push_frame(small))  # type: ignore[arg-type]
        assert pair.b.store.has_record(big.id) and pair.b.store.has_record(small.id)
    loop_thread = threading.get_ident()
    assert [ident == loop_thread for _name, ident in pair.ran] == [False, False]


async def test_a_commit_of_a_few_records_is_pushed_on_the_loop_and_more_on_the_thread(
        tmp_path: Path) -> None:
    async with synced_pair(tmp_path) as pair:
        pair.watch(pair.hubs[0], "local_commit")
        for n in range(INLINE_LOCAL_RECORDS + 1):
            pair.a.vault.add(f"import {n}")
        assert pair.hubs[0].local_commit_here() is None  # too many for the loop
        assert await pair.hubs[0].local_commit() == (INLINE_LOCAL_RECORDS + 1, False)
        pair.a.vault.add("one more")
        assert pair.hubs[0].local_commit_here() == (1, False)
        async with asyncio.timeout(10):
            while pair.a.state() != pair.b.state():
                await asyncio.sleep(0.01)
    loop_thread = threading.get_ident()
    assert [ident == loop_thread for _name, ident in pair.ran] == [False, True]


async def test_the_inbox_keeps_the_batches_of_an_initial_sync_and_is_empty_once_stored(
        tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox")
    kept: list[int] = []
    keep = inbox.append

    def noting(frame: bytes) -> int:
        kept.append(len(list(read_frames(inbox.folder))))  # what it held as this one came
        return keep(frame)

    inbox.append = noting  # type: ignore[method-assign]
    async with synced_pair(tmp_path, items=2000, inbox=inbox) as pair:
        assert len(pair.b.record_ids()) == len(pair.a.record_ids())
    assert inbox.next >= 4  # the 2000 records came in several batches, each kept
    assert max(kept) >= 1  # the session held batches back to store them together
    assert list(read_frames(inbox.folder)) == []  # and every one went once stored
    inbox.close()
