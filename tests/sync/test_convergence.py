"""Property: any mix of edits, sessions, live pushes, duplicates and cuts converges, losing nothing.

Some households include a hostile device (a member, or a relay without the vault key) that
writes inflated version vectors, far-future times, junk payloads, keyless tombstones,
record trees with a moved proof, retroactive revocations and revocations of others, and
equivocates (two or three records with one seq, handed to different honest devices), in
any interleaving; honest devices also write items together (one record tree per write).
Afterwards every honest replica holds the same records (twins kept aside included),
accepts the same ones and computes the same members; every honest edit its author was
still allowed to write is held or dominated by an honest version; every honest replica
still opens its vault.

CI runs a modest number of examples. The issue-11 target run (1000 x 60):

    WIFISYNC_SYNC_EXAMPLES=1000 WIFISYNC_SYNC_STEPS=60 \\
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
from msgspec.structs import replace

from tests.sync.helpers import PASSWORD, Device, Frame, Wire, craft, household, sync
from wifisync.errors import IntegrityError, ProtocolError, UsageError
from wifisync.model import crypto
from wifisync.model.clock import hlc_pack
from wifisync.model.membership import view_of
from wifisync.model.records import (
    Kind,
    Membership,
    Record,
    member_item_id,
    payload_key,
    seal_item_body,
    sign_records,
)
from wifisync.model.versions import dominates
from wifisync.store.base import EMPTY_FINGERPRINT, fingerprint_add
from wifisync.vault.members import acknowledge
from wifisync.vault.unlocked import Vault
from wifisync.wallclock import wall_ms

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
        self.hostile: Device | None = None
        self.honest: list[Device] = []

    @initialize(n=st.integers(3, 5), seed=st.integers(0, 2**16),
                hostile=st.sampled_from(["none", "member", "relay"]))
    def make_household(self, n: int, seed: int, hostile: str) -> None:
        self.devices = household(n, relays=frozenset({n - 1} if hostile == "relay" else ()))
        self.hostile = None if hostile == "none" else self.devices[-1]
        self.honest = [d for d in self.devices if d is not self.hostile]
        self.rng = random.Random(seed)
        for d in self.devices:
            self.written.extend(d.store.get_record(rid) for rid in d.record_ids())  # type: ignore[misc]

    def _device(self, i: int) -> Device:
        """An honest device (the local-write rules)."""
        return self.honest[i % len(self.honest)]

    def _any(self, i: int) -> Device:
        """Any device, the hostile one included (sessions)."""
        return self.devices[i % len(self.devices)]

    def _wrote(self, i: int | Device, before: set[bytes]) -> None:
        """Track new local records and push them to every open wire, as the daemon does."""
        device = i if isinstance(i, Device) else self._device(i)
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
        try:
            item = device.vault.add(title or "untitled", fields={"password": "p"})
        except UsageError:  # this device learned it was revoked: it writes nothing
            item = crypto.random_bytes(16)
        self._wrote(i, before)
        return item

    @rule(target=items, i=st.integers(0, 4), n=st.integers(2, 4))
    def add_together(self, i: int, n: int) -> bytes:
        """Items written together, as an import writes them: signed as one record tree."""
        device = self._device(i)
        before = device.record_ids()
        item = crypto.random_bytes(16)
        try:
            with device.vault.writing_together():
                for k in range(n):
                    item = device.vault.add(f"together {k}", fields={"password": "p"})
        except UsageError:
            pass
        self._wrote(i, before)
        return item

    @rule(i=st.integers(0, 4), item=items, field=st.sampled_from(FIELDS),
          value=st.text(max_size=5))
    def edit(self, i: int, item: bytes, field: str, value: str) -> None:
        device = self._device(i)
        if not self._live(device, item):
            return
        before = device.record_ids()
        try:
            device.vault.edit(item, fields={field: value})
        except (UsageError, IntegrityError):  # revoked, or an unreadable (junk) item
            return
        self._wrote(i, before)

    @rule(i=st.integers(0, 4), item=items)
    def delete(self, i: int, item: bytes) -> None:
        device = self._device(i)
        if not self._live(device, item):
            return
        before = device.record_ids()
        try:
            device.vault.delete(item)
        except UsageError:
            return
        self._wrote(i, before)

    @rule(i=st.integers(0, 4))
    def merge_pending(self, i: int) -> None:
        device = self._device(i)
        before = device.record_ids()
        try:
            device.vault.merge_pending()
        except UsageError:
            return
        self._wrote(i, before)

    @staticmethod
    def _live(device: Device, item: bytes) -> bool:
        return any(not r.header.deleted for r in device.store.heads(item))

    # --- the hostile device ---------------------------------------------------------------------

    def _forge(self, record: Record) -> None:
        """The hostile device stores what it wrote by hand, and pushes it like any write."""
        assert self.hostile is not None
        before = self.hostile.record_ids()
        self.hostile.store.append(record)
        self._wrote(self.hostile, before)

    @precondition(lambda self: self.hostile is not None)
    @rule(item=items)
    def hostile_inflates_a_vector(self, item: bytes) -> None:
        assert self.hostile is not None
        lie = {d.id: 2**62 for d in self.honest}
        self._forge(craft(self.hostile, item, body=crypto.random_bytes(40), versions=lie))

    @precondition(lambda self: self.hostile is not None)
    @rule(item=items, far=st.sampled_from([2**63 - 1, hlc_pack(wall_ms() + 3 * 86_400_000, 0)]))
    def hostile_writes_a_future_time(self, item: bytes, far: int) -> None:
        assert self.hostile is not None
        self._forge(craft(self.hostile, item, body=crypto.random_bytes(40), time=far))

    @precondition(lambda self: self.hostile is not None)
    @rule(item=items)
    def hostile_moves_a_proof(self, item: bytes) -> None:
        """A record tree whose second record carries the first's proof (it never holds)."""
        assert self.hostile is not None
        good, other = (craft(self.hostile, item, body=crypto.random_bytes(40), versions={}),
                       craft(self.hostile, crypto.random_bytes(16), body=b"x"))
        header2 = replace(other.header, seq=good.header.seq + 1,
                          versions={self.hostile.id: good.header.seq + 1})
        good, other = sign_records(self.hostile.identity,
                                   [(good.header, good.body), (header2, other.body)])
        self._forge(good)
        self._forge(Record.create(other.header, other.body, other.signature, good.proof))

    @precondition(lambda self: self.hostile is not None)
    @rule(target=items)
    def hostile_writes_junk(self) -> bytes:
        assert self.hostile is not None
        item = crypto.random_bytes(16)
        self._forge(craft(self.hostile, item, body=crypto.random_bytes(60)))
        return item

    @precondition(lambda self: self.hostile is not None)
    @rule(item=items)
    def hostile_junk_beside_an_item(self, item: bytes) -> None:
        """A junk version concurrent with the honest ones (it claims only itself)."""
        assert self.hostile is not None
        self._forge(craft(self.hostile, item, body=crypto.random_bytes(60), versions={}))

    @precondition(lambda self: self.hostile is not None and self.hostile in self.devices[-1:]
                  and not view_of(self.hostile.store).members[self.hostile.id].holds_key)
    @rule(item=items, j=st.integers(0, 4))
    def relay_deletes(self, item: bytes, j: int) -> None:
        """Having synced first, so that the tombstone dominates what the others hold."""
        assert self.hostile is not None
        self.session(self.devices.index(self._device(j)), len(self.devices) - 1, None, False)
        if self.hostile.store.heads(item):
            self._forge(craft(self.hostile, item, deleted=True, body=b""))

    @precondition(lambda self: self.hostile is not None)
    @rule(j=st.integers(0, 4), retroactive=st.booleans())
    def hostile_revokes(self, j: int, retroactive: bool) -> None:
        """A revocation of the creator at 0 (void) or a real one of an honest device."""
        assert self.hostile is not None
        target = self.devices[0] if retroactive else self._device(j)
        held = {target.id: 0} if retroactive else self.hostile.store.origins()
        body = Membership(target.identity.cert_der, target.name, revoked=True, held=held)
        self._forge(craft(self.hostile, member_item_id(target.id), Kind.MEMBER, body.encode()))

    def _readable(self, item: bytes, title: str) -> Record:
        """A version the hostile device signs at its next seq that opens (it has the key)."""
        assert self.hostile is not None
        time = hlc_pack(wall_ms(), 0)
        header = craft(self.hostile, item, time=time, versions={}).header
        payload = {"attrs": {"title": [title, time]}, "fields": {"password": [title, time]},
                   "history": {}}
        body = seal_item_body(payload_key(self.hostile.vault_key), header, payload)
        return craft(self.hostile, item, body=body, time=time, versions={})

    @precondition(lambda self: self.hostile is not None)
    @rule(target=items, item=items, i=st.integers(0, 4), j=st.integers(0, 4),
          twins=st.integers(2, 3), how=st.sampled_from(["body", "item", "member"]))
    def hostile_equivocates(self, item: bytes, i: int, j: int, twins: int, how: str) -> bytes:
        """Two or three records with one seq, each handed to a different honest device (as
        pushes on different connections); the hostile device keeps the first. Honest
        devices may then edit the item of the last item twin (a claim of a twin that may
        lose)."""
        assert self.hostile is not None
        hostile = self.hostile
        records = [self._readable(item, "twin 0")]
        for k in range(1, twins):
            if how == "member" and k == 1:
                body = Membership(hostile.identity.cert_der, f"twin {k}")
                records.append(craft(hostile, member_item_id(hostile.id), Kind.MEMBER,
                                     body.encode(), versions={}))
            else:
                records.append(self._readable(item if how == "body" else
                                              crypto.random_bytes(16), f"twin {k}"))
        self._forge(records[0])
        self.written.extend(records[1:])
        for k, twin in enumerate(records[1:]):
            receiver = self._device((i, j)[k % 2])
            self._relay(receiver, receiver.replica.apply([twin]).applied, exclude=None)
        return next(r.header.item for r in reversed(records) if r.header.kind == Kind.ITEM)

    # --- sessions ---------------------------------------------------------------------------

    @rule(i=st.integers(0, 4), j=st.integers(0, 4), cut_after=st.none() | st.integers(0, 12),
          chaos=st.booleans())
    def session(self, i: int, j: int, cut_after: int | None, chaos: bool) -> None:
        """A whole session, possibly cut after some frames or disturbed by duplicates."""
        a, b = self._any(i), self._any(j)
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
        a, b = self._any(i), self._any(j)
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
        if out.membership_changed and receiver is not self.hostile:
            before = receiver.record_ids()  # what its daemon does on news of a revocation
            acknowledge(receiver.vault.author)
            self._wrote(receiver, before)
        return True

    def _no_id_exchange(self, wire: Wire) -> None:
        """Without a bug, comparing seen vectors always suffices in an honest household.

        With a hostile device the ID exchange is allowed: it holds records the others
        refuse (far-future ones), and in about 4 of 1000 long runs two honest devices
        needed one too (both ended with the same records; see the issue-11 note).
        """
        if self.hostile is None:
            assert not any(s.stats.id_exchanges for s in wire.sessions)

    # --- checks -----------------------------------------------------------------------------

    @invariant()
    def stores_are_consistent(self) -> None:
        """Fingerprint = sum of held IDs; every seq up to seen is held."""
        for d in self.devices:
            assert d.store.fingerprint() == fingerprint_add(EMPTY_FINGERPRINT,
                                                            d.store.synced_ids())
            for origin, n in d.store.seen().items():
                assert all(d.store.has_seq(origin, s) for s in range(1, n + 1))

    def teardown(self) -> None:
        if not self.devices:
            return
        self.wires.clear()
        honest = self.honest
        for _ in range(2):  # acknowledgements written during the first pass travel in the second
            for i in range(len(honest) - 1):
                self._settle(honest[i], honest[i + 1])
            for i in reversed(range(len(honest) - 1)):
                self._settle(honest[i + 1], honest[i])
        first = honest[0]
        for d in honest[1:]:
            assert d.state() == first.state()
            assert list(d.store.synced_ids()) == list(first.store.synced_ids())
            assert d.store.inactive_records() == first.store.inactive_records()
        heads = {item: held for item, held in first.store.heads_of_kind(Kind.ITEM)}
        for d in honest[1:]:
            assert dict(d.store.heads_of_kind(Kind.ITEM)) == heads
        view = view_of(first.store)
        for d in honest[1:]:
            assert view_of(d.store).members == view.members
        honest_ids = {d.id for d in honest}
        for r in self.written:
            h = r.header
            if h.kind != Kind.ITEM or h.author not in honest_ids \
                    or not view.counts(h.author, h.seq, h.kind):
                continue  # the hostile device's, or written after its author was revoked
            held = heads.get(h.item, [])
            assert any(x.header.author in honest_ids
                       and dominates(x.header.versions, h.versions) for x in held) \
                or r.id in {x.id for x in held}, "an edit was lost"
        for d in honest:
            assert Vault.unlock(d.store, d.identity, PASSWORD).vault_key == d.vault_key
        for d in honest:  # the next session between any two of them is a no-op
            wire = sync(first, d) if d is not first else None
            assert wire is None or wire.delivered == 2

    def _settle(self, a: Device, b: Device) -> None:
        """A whole session, then what a daemon does on news of a revocation."""
        self._no_id_exchange(sync(a, b))
        for d in (a, b):
            acknowledge(d.vault.author)


Household.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestHousehold = Household.TestCase
