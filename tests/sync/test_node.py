"""The sync node: relaying, flow control, timers and membership news, with nodes wired in memory."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from tests.sync.helpers import Device, household
from wifisync.model.membership import Member, current_members, named_devices
from wifisync.model.records import Record
from wifisync.store import RecordStore
from wifisync.sync import SyncSession
from wifisync.sync import node as node_module
from wifisync.sync.node import (
    Action,
    Behind,
    Close,
    CloseCode,
    CutOff,
    Deletes,
    LiveApplied,
    Send,
    SessionFactory,
    Synced,
    SyncNode,
    TrustChanged,
)
from wifisync.sync.session import STALL_SECONDS
from wifisync.vault.members import acknowledge, revoke

A = TypeVar("A", bound=Action)


@dataclass
class MemoryNodeStore:
    """What the node asks of a device's store, as the daemon's store thread answers it."""

    device: Device
    released: int = 0

    @property
    def store(self) -> RecordStore:
        """The device's store."""
        return self.device.store

    def local_after(self, seq: int, limit: int, max_bytes: int) -> list[Record]:
        """This device's records after ``seq``."""
        return self.store.records_after(self.device.id, seq, limit, max_bytes)

    def get_record(self, record_id: bytes) -> Record | None:
        """One record by ID."""
        return self.store.get_record(record_id)

    def current_members(self) -> dict[bytes, Member]:
        """The current members."""
        return current_members(self.store)

    def revoked(self, device: bytes) -> bool:
        """Whether ``device`` is named as revoked."""
        m = named_devices(self.store).get(device)
        return m is not None and m.revoked

    def acknowledge_revocations(self) -> bool:
        """Acknowledge what revocations call for."""
        return bool(acknowledge(self.device.vault.author))

    def release_memory(self) -> None:
        """Count the calls."""
        self.released += 1


@dataclass
class Peer:
    """One device with its node and everything the node asked for."""

    device: Device
    node: SyncNode
    actions: list[Action] = field(default_factory=list)


@dataclass
class Net:
    """Nodes joined by in-memory links; each link has an ID on each side."""

    peers: list[Peer]
    now: float = 0.0
    queue: deque[tuple[int, int, bytes]] = field(default_factory=deque)  # (node, link, frame)
    ends: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    closed: set[tuple[int, int]] = field(default_factory=set)
    next_link: int = 1

    @classmethod
    def of(cls, devices: list[Device]) -> Net:
        """One node per device, none linked yet."""
        return cls([Peer(d, SyncNode(d.id, MemoryNodeStore(d), cls.session_for(d),
                                     d.store.max_seq(d.id))) for d in devices])

    @staticmethod
    def session_for(device: Device) -> SessionFactory:
        """Sessions on a device's replica."""
        return lambda peer, now: SyncSession(device.replica, peer, now=now)

    def link(self, i: int, j: int) -> tuple[int, int]:
        """Bring up a link between nodes ``i`` and ``j``; its ID on each side."""
        a, b = self.next_link, self.next_link + 1
        self.next_link += 2
        self.ends[(i, a)], self.ends[(j, b)] = (j, b), (i, a)
        self.peers[i].node.link_up(a, self.peers[j].device.id, self.now)
        self.collect(i)
        self.peers[j].node.link_up(b, self.peers[i].device.id, self.now)
        self.collect(j)
        return a, b

    def collect(self, i: int) -> list[Action]:
        """Carry out node ``i``'s actions: frames go on the wire, closes cut the link."""
        actions = self.peers[i].node.take_actions()
        self.peers[i].actions.extend(actions)
        for action in actions:
            if isinstance(action, Send) and (i, action.link) not in self.closed:
                self.queue.extend((i, action.link, f) for f in action.frames)
            elif isinstance(action, Close):
                self.closed.add((i, action.link))
        return actions

    def run(self, max_frames: int = 10_000) -> None:
        """Deliver frames in order until the wire is quiet."""
        for _ in range(max_frames):
            if not self.queue:
                return
            i, link, frame = self.queue.popleft()
            j, their_link = self.ends[(i, link)]
            if (j, their_link) not in self.closed:
                self.peers[j].node.frame_in(their_link, frame, self.now)
                self.collect(j)
        raise AssertionError("the wire did not settle")

    def of_type(self, i: int, kind: type[A]) -> list[A]:
        """Node ``i``'s actions of one type so far."""
        return [a for a in self.peers[i].actions if isinstance(a, kind)]


def line(n: int = 3) -> tuple[Net, list[Device]]:
    """``n`` devices in a line (0-1, 1-2, ...), in sync after the initial exchanges."""
    devices = household(n)
    net = Net.of(devices)
    for i in range(n - 1):
        net.link(i, i + 1)  # as a daemon's TLS gate would: only once each knows the other
        net.run()
    return net, devices


def test_a_line_of_three_converges_and_each_link_reports_its_initial_exchange() -> None:
    devices = household(3)
    devices[0].vault.add("at the end of the line")  # only d0 holds it: d2 gets it via d1
    net = Net.of(devices)
    net.link(0, 1)
    net.run()  # d1 learns that d2 is a member (d2 joined after it)
    net.link(1, 2)
    net.run()
    assert devices[0].state() == devices[1].state() == devices[2].state()
    assert len(net.of_type(1, Synced)) == 2  # one per link
    assert all(b.records == 0 for b in net.of_type(2, Behind)[-1:])


def test_a_local_commit_reaches_the_end_of_the_line_through_the_relay() -> None:
    net, devices = line()
    devices[0].vault.add("fresh")
    assert net.peers[0].node.local_commit(net.now) == (1, False)  # all of it: no more
    net.collect(0)
    assert net.peers[0].node.local_commit(net.now) == (0, False)  # pushed already
    net.run()
    assert devices[0].state() == devices[2].state()
    assert net.of_type(1, LiveApplied) and net.of_type(2, LiveApplied)


def test_relayed_records_wait_as_ids_while_a_link_is_congested_and_go_once_it_drains() -> None:
    net, devices = line()
    relay_to_end = next(link for (i, link), _ in net.ends.items() if i == 1
                        and net.ends[(i, link)][0] == 2)
    net.peers[1].node.link_congested(relay_to_end, net.now)
    devices[0].vault.add("held back")
    net.peers[0].node.local_commit(net.now)
    net.collect(0)
    net.run()
    assert devices[1].state() != devices[2].state()  # the relay held it back
    net.peers[1].node.link_drained(relay_to_end, net.now)
    net.collect(1)
    net.run()
    assert devices[1].state() == devices[2].state()


def test_a_bad_frame_closes_only_its_link_and_later_frames_on_it_are_ignored() -> None:
    net, devices = line()
    node = net.peers[1].node
    first, _second = node.links()
    node.frame_in(first, b"\x00not a message", net.now)
    [close] = [a for a in net.collect(1) if isinstance(a, Close)]
    assert (close.link, close.code) == (first, CloseCode.PROTOCOL_ERROR)
    assert close.reason.startswith("protocol error: ")
    node.frame_in(first, b"\x00again", net.now)
    assert net.collect(1) == []
    devices[2].vault.add("still flows on the other link")
    net.peers[2].node.local_commit(net.now)
    net.collect(2)
    net.run()
    assert devices[1].state() == devices[2].state()


def test_a_stalled_initial_exchange_closes_when_its_timer_fires() -> None:
    devices = household(2)
    net = Net.of(devices)
    a, _b = net.link(0, 1)  # the HELLOs are never delivered
    node = net.peers[0].node
    deadline = node.next_deadline()
    assert deadline == net.now + STALL_SECONDS
    node.tick(deadline - 1)
    assert net.collect(0) == []
    node.tick(deadline)
    [close] = net.collect(0)
    assert isinstance(close, Close) and close.link == a and "stalled" in close.reason
    assert node.next_deadline() is None


def test_a_relay_closes_the_revoked_device_after_relaying_it_its_revocation() -> None:
    net, devices = line()
    revoke(devices[0].vault.author, current_members(devices[0].store)[devices[2].id])
    net.peers[0].node.local_commit(net.now)
    [trust] = [a for a in net.collect(0) if isinstance(a, TrustChanged)]
    assert trust.gone == {devices[2].id}
    net.run()
    closes = net.of_type(1, Close)
    assert [(c.code, c.reason) for c in closes] == [(CloseCode.NOT_MEMBER, "revoked")]
    assert any(isinstance(a, TrustChanged) and devices[2].id in a.gone
               for a in net.peers[1].actions)
    [cut_off] = net.of_type(2, CutOff)  # it heard before the close
    assert cut_off.revoked and devices[2].id not in cut_off.members
    assert net.peers[2].node.cut_off


def test_mass_deletions_are_counted_per_author() -> None:
    net, devices = line(2)
    vault = devices[0].vault
    items = [vault.add(f"item {n}") for n in range(3)]
    net.peers[0].node.local_commit(net.now)
    net.collect(0)
    net.run()
    for item in items:
        vault.delete(item)
    net.peers[0].node.local_commit(net.now)
    net.collect(0)
    net.run()
    assert net.of_type(1, Deletes) == [Deletes(devices[0].id, 3)]


def test_link_down_returns_the_session_counters_and_the_link_is_forgotten() -> None:
    net, _devices = line(2)
    node = net.peers[0].node
    [link] = node.links()
    stats = node.link_down(link, net.now)
    assert stats is not None and stats.frames_received > 0
    assert node.links() == [] and node.link_down(link, net.now) is None


def test_a_link_from_a_device_that_left_during_its_handshake_closes_at_once() -> None:
    net, devices = line()
    revoke(devices[0].vault.author, current_members(devices[0].store)[devices[2].id])
    node = net.peers[0].node
    node.local_commit(net.now)
    net.collect(0)
    node.link_up(99, devices[2].id, net.now)  # its handshake began before the revocation
    assert net.collect(0) == [Close(99, CloseCode.NOT_MEMBER, "not a member")]


def test_a_local_commit_says_whether_its_slice_was_cut_by_the_bounds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    net, devices = line()
    monkeypatch.setattr(node_module, "LOCAL_RECORDS", 2)
    for i in range(3):
        devices[0].vault.add(f"item {i}")
    node = net.peers[0].node
    assert node.local_commit(net.now) == (2, True)  # the daemon asks again: one more waits
    assert node.local_commit(net.now) == (1, False)  # the rest: the daemon stops asking
    monkeypatch.setattr(node_module, "LOCAL_BYTES", 1)
    devices[0].vault.add("large enough")
    assert node.local_commit(net.now) == (1, True)  # cut by its bytes
    assert node.local_commit(net.now) == (0, False)
