"""Property: any mix of edits, sessions, live pushes, duplicates and cuts converges, losing nothing.

CI runs a modest number of examples. A longer run:

    WIFISYNC_SYNC_EXAMPLES=2000 WIFISYNC_SYNC_STEPS=60 \\
        .venv/bin/python -m pytest tests/sync/test_convergence.py -q
"""

from __future__ import annotations

import os
import random

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from wifisync.errors import ProtocolError
from wifisync.records import Kind, Record
from wifisync.store.base import EMPTY_FINGERPRINT, fingerprint_add
from wifisync.versions import dominates

from .helpers import Device, Frame, Wire, household, sync

EXAMPLES = int(os.environ.get("WIFISYNC_SYNC_EXAMPLES", "60"))
STEPS = int(os.environ.get("WIFISYNC_SYNC_STEPS", "30"))
FIELDS = ["user", "password", "url", "note"]


class Household(RuleBasedStateMachine):
    """Three to five replicas that edit offline and meet in any order over faulty wires."""

    items = Bundle("items")

    def __init__(self) -> None:
        super().__init__()
        self.devices: list[Device] = []
        self.written: list[Record] = []
        self.wires: dict[tuple[int, int], Wire] = {}
        self.rng = random.Random(0)

    @initialize(n=st.integers(3, 5), seed=st.integers(0, 2**16))
    def make_household(self, n: int, seed: int) -> None:
        self.devices = household(n)
        self.rng = random.Random(seed)
        for d in self.devices:
            self.written.extend(d.store.get_record(rid) for rid in d.record_ids())  # type: ignore[misc]

    def _device(self, i: int) -> Device:
        return self.devices[i % len(self.devices)]

    def _wrote(self, i: int, before: set[bytes]) -> None:
        """Track new local records and push them to every open wire, as the daemon does."""
        device = self._device(i)
        new = [r for rid in device.record_ids() - before
               if (r := device.store.get_record(rid)) is not None]
        new.sort(key=lambda r: r.header.seq)
        self.written.extend(new)
        self._relay(device, new, exclude=None)

    def _relay(self, device: Device, records: list[Record], exclude: Wire | None) -> None:
        if not records:
            return
        for wire in self.wires.values():
            if wire is not exclude:
                for side, d in enumerate((wire.a, wire.b)):
                    if d is device:
                        wire.push(side, records)

    # --- local writes ---------------------------------------------------------------------

    @rule(target=items, i=st.integers(0, 4), title=st.text(max_size=5))
    def add(self, i: int, title: str) -> bytes:
        device = self._device(i)
        before = device.record_ids()
        item = device.vault.add(title or "untitled", fields={"password": "p"})
        self._wrote(i, before)
        return item

    @rule(i=st.integers(0, 4), item=items, field=st.sampled_from(FIELDS),
          value=st.text(max_size=5))
    def edit(self, i: int, item: bytes, field: str, value: str) -> None:
        device = self._device(i)
        if not self._live(device, item):
            return
        before = device.record_ids()
        device.vault.edit(item, fields={field: value})
        self._wrote(i, before)

    @rule(i=st.integers(0, 4), item=items)
    def delete(self, i: int, item: bytes) -> None:
        device = self._device(i)
        if not self._live(device, item):
            return
        before = device.record_ids()
        device.vault.delete(item)
        self._wrote(i, before)

    @rule(i=st.integers(0, 4))
    def merge_pending(self, i: int) -> None:
        device = self._device(i)
        before = device.record_ids()
        device.vault.merge_pending()
        self._wrote(i, before)

    @staticmethod
    def _live(device: Device, item: bytes) -> bool:
        return any(not r.header.deleted for r in device.store.heads(item))

    # --- sessions ---------------------------------------------------------------------------

    @rule(i=st.integers(0, 4), j=st.integers(0, 4), cut_after=st.none() | st.integers(0, 12),
          chaos=st.booleans())
    def session(self, i: int, j: int, cut_after: int | None, chaos: bool) -> None:
        """A whole session, possibly cut after some frames or disturbed by duplicates."""
        a, b = self._device(i), self._device(j)
        if a is b:
            return
        wire = Wire(a, b)
        limit = 10_000 if cut_after is None else cut_after
        for _ in range(limit):
            if not wire.queue:
                break
            if not self._deliver(wire, chaos):
                return

    @precondition(lambda self: len(self.wires) < 3)
    @rule(i=st.integers(0, 4), j=st.integers(0, 4))
    def connect(self, i: int, j: int) -> None:
        """Open a long-lived connection; its frames move in later steps."""
        a, b = self._device(i), self._device(j)
        key = (self.devices.index(a), self.devices.index(b))
        if a is b or key in self.wires or key[::-1] in self.wires:
            return
        self.wires[key] = Wire(a, b)

    @precondition(lambda self: bool(self.wires))
    @rule(k=st.integers(0, 2), frames=st.integers(1, 8), chaos=st.booleans())
    def step_connection(self, k: int, frames: int, chaos: bool) -> None:
        key = sorted(self.wires)[k % len(self.wires)]
        wire = self.wires[key]
        for _ in range(frames):
            if not wire.queue:
                return
            if not self._deliver(wire, chaos):
                del self.wires[key]
                return

    @precondition(lambda self: bool(self.wires))
    @rule(k=st.integers(0, 2))
    def cut_connection(self, k: int) -> None:
        del self.wires[sorted(self.wires)[k % len(self.wires)]]

    def _deliver(self, wire: Wire, chaos: bool) -> bool:
        """One frame (maybe duplicated or overtaken); relays what it applied. False = ended."""
        frame: Frame | None = None
        if chaos and self.rng.random() < 0.2:
            if len(wire.queue) > 1 and self.rng.random() < 0.5:
                i = self.rng.randrange(1, len(wire.queue))
                frame = wire.queue[i]
                del wire.queue[i]
            else:
                frame = Frame(wire.queue[0].to, wire.queue[0].data)
        receiver = (wire.a, wire.b)[(frame or wire.queue[0]).to]
        try:
            out = wire.deliver_one(frame)
        except ProtocolError:
            return False
        finally:
            self._no_id_exchange(wire)
        self._relay(receiver, out.applied, exclude=wire)
        return True

    @staticmethod
    def _no_id_exchange(wire: Wire) -> None:
        """Without a bug, comparing seen vectors always suffices."""
        assert not any(s.stats.id_exchanges for s in wire.sessions)

    # --- checks -----------------------------------------------------------------------------

    @invariant()
    def stores_are_consistent(self) -> None:
        """Fingerprint = sum of held IDs; every seq up to seen is held."""
        for d in self.devices:
            fp = EMPTY_FINGERPRINT
            for rid in d.record_ids():
                fp = fingerprint_add(fp, rid)
            assert d.store.fingerprint() == fp
            for origin, n in d.store.seen().items():
                assert all(d.store.has_seq(origin, s) for s in range(1, n + 1))

    def teardown(self) -> None:
        if not self.devices:
            return
        self.wires.clear()
        n = len(self.devices)
        for i in range(n - 1):
            self._no_id_exchange(sync(self.devices[i], self.devices[i + 1]))
        for i in reversed(range(n - 1)):
            self._no_id_exchange(sync(self.devices[i + 1], self.devices[i]))
        first = self.devices[0]
        for d in self.devices[1:]:
            assert d.state() == first.state()
        heads = {item: held for item, held in first.store.heads_of_kind(Kind.ITEM)}
        for d in self.devices[1:]:
            assert dict(d.store.heads_of_kind(Kind.ITEM)) == heads
        for r in self.written:
            if r.header.kind != Kind.ITEM:
                continue
            held = heads[r.header.item]
            assert any(dominates(h.header.versions, r.header.versions) for h in held), \
                "an edit was lost"
        for d in self.devices:  # the next session between any two of them is a no-op
            wire = sync(first, d) if d is not first else None
            assert wire is None or wire.delivered == 2


Household.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestHousehold = Household.TestCase
