"""A household of in-memory devices and a wire that pairs two sync sessions (h11 style)."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from wifisync.errors import ProtocolError
from wifisync.model import crypto
from wifisync.model.clock import hlc_pack
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import (
    VAULT_KEY_ITEM,
    Kind,
    Membership,
    Record,
    RecordHeader,
    sign_record,
)
from wifisync.model.verifier import InlineVerifier
from wifisync.model.versions import join
from wifisync.store import MemoryStore, RecordStore
from wifisync.sync import Replica, SessionOutput, SyncSession
from wifisync.vault.unlocked import META_VAULT_ID, Vault
from wifisync.wallclock import wall_ms

PASSWORD = "pw"
FAST_KDF = crypto.KdfParams.fresh(opslimit=1, memlimit=8192)
_IDENTITIES: list[DeviceIdentity] = []


def identity(i: int) -> DeviceIdentity:
    """The i-th test identity (generated once per test process: certificates take time)."""
    while len(_IDENTITIES) <= i:
        _IDENTITIES.append(DeviceIdentity.generate())
    return _IDENTITIES[i]


@dataclass
class Device:
    """One member device: identity, store, replica, and its vault (it knows the key)."""

    name: str
    identity: DeviceIdentity
    store: RecordStore
    vault_key: bytes

    @property
    def id(self) -> bytes:
        """Device ID."""
        return self.identity.device_id

    @property
    def vault(self) -> Vault:
        """A vault handle on this device's store."""
        return Vault(self.store, self.identity, self.vault_key)

    @property
    def replica(self) -> Replica:
        """A replica on this device's store (fresh each time, as after a restart)."""
        return replica_on(self.store, self.store.get_meta(META_VAULT_ID) or b"", self.id)

    def record_ids(self) -> set[bytes]:
        """Every held record ID."""
        return set(self.store.record_ids())

    def state(self) -> tuple[bytes, dict[bytes, int], set[bytes]]:
        """Fingerprint, seen and record IDs: equal on replicas holding the same records."""
        return self.store.fingerprint(), self.store.seen(), self.record_ids()


def replica_on(store: RecordStore, vault_id: bytes, self_id: bytes) -> Replica:
    """A replica that checks signatures on the spot and reads the wall clock."""
    return Replica(store, vault_id, self_id, verifier=InlineVerifier(), now_ms=wall_ms)


def pairing_records(store: RecordStore) -> list[Record]:
    """What a member hands a joining device: every membership and vault-key record."""
    out: list[Record] = []
    for kind in (Kind.MEMBER,):
        for item, _held in store.heads_of_kind(kind):
            out.extend(store.versions(item))
    out.extend(store.versions(VAULT_KEY_ITEM))
    return out


def create_device(name: str, ident: DeviceIdentity,
                  store_factory: Callable[[], RecordStore] = MemoryStore) -> Device:
    """The device that creates a vault."""
    store = store_factory()
    vault = Vault.create(store, ident, name, PASSWORD, FAST_KDF)
    return Device(name, ident, store, vault.vault_key)


def join_device(member: Device, name: str, ident: DeviceIdentity,
                store_factory: Callable[[], RecordStore] = MemoryStore,
                role: str = "member") -> Device:
    """Pair a new device: the member writes its membership, the newcomer bootstraps."""
    member.vault.write_member(Membership(ident.cert_der, name, role=role))
    store = store_factory()
    vault_id = member.store.get_meta(META_VAULT_ID)
    assert vault_id is not None
    store.set_meta(META_VAULT_ID, vault_id)
    result = replica_on(store, vault_id, ident.device_id).bootstrap(pairing_records(member.store))
    assert result.refused == 0
    return Device(name, ident, store, member.vault_key)


def craft(device: Device, item: bytes, kind: Kind = Kind.ITEM, body: bytes = b"junk", *,
          versions: dict[bytes, int] | None = None, time: int | None = None,
          deleted: bool = False) -> Record:
    """A record ``device`` signs by hand (anything a hostile member could write), not stored.

    It takes ``device``'s next sequence number and, unless ``versions`` says otherwise,
    the vector an honest write would carry.
    """
    seq = device.store.next_seq(device.id)
    if versions is None:
        versions = join(r.header.versions for r in device.store.heads(item))
    vector = dict(versions)
    vector[device.id] = seq
    header = RecordHeader(vault=device.store.get_meta(META_VAULT_ID) or b"", item=item,
                          kind=kind, author=device.id, seq=seq, versions=vector,
                          time=hlc_pack(wall_ms(), 0) if time is None else time,
                          deleted=deleted)
    return sign_record(device.identity, header, body)


def household(n: int, store_factory: Callable[[], RecordStore] = MemoryStore,
              relays: frozenset[int] = frozenset()) -> list[Device]:
    """``n`` devices of one vault; each joined through the first one (``relays``: as relays)."""
    first = create_device("d0", identity(0), store_factory)
    return [first] + [join_device(first, f"d{i}", identity(i), store_factory,
                                  role="relay" if i in relays else "member")
                      for i in range(1, n)]


@dataclass
class Frame:
    """A frame on the wire, from one side to the other."""

    to: int
    data: bytes


@dataclass
class Wire:
    """Two sessions joined back to back; each test chooses how frames travel.

    ``outputs[i]`` collects what side ``i``'s session returned (applied records, ...).
    """

    a: Device
    b: Device
    now: float = 0.0
    sessions: list[SyncSession] = field(default_factory=list)
    queue: deque[Frame] = field(default_factory=deque)
    outputs: list[list[SessionOutput]] = field(default_factory=lambda: [[], []])
    delivered: int = 0

    def __post_init__(self) -> None:
        self.sessions = [SyncSession(self.a.replica, self.b.id, now=self.now),
                         SyncSession(self.b.replica, self.a.id, now=self.now)]
        for side in (0, 1):
            self._send(side, self.sessions[side].start(self.now))

    def _send(self, side: int, frames: list[bytes]) -> None:
        self.queue.extend(Frame(1 - side, f) for f in frames)

    def deliver_one(self, frame: Frame | None = None) -> SessionOutput:
        """Hand the next (or the given) frame to its receiver and queue the replies."""
        f = frame if frame is not None else self.queue.popleft()
        out = self.sessions[f.to].receive(f.data, self.now)
        self.outputs[f.to].append(out)
        self._send(f.to, out.send)
        self.delivered += 1
        return out

    def push(self, side: int, records: list[Record]) -> None:
        """Side ``side`` pushes live records."""
        self._send(side, self.sessions[side].push(records))

    def run(self, max_frames: int = 100_000) -> None:
        """Deliver in order until nothing is left."""
        for _ in range(max_frames):
            if not self.queue:
                return
            self.deliver_one()
        raise AssertionError("the exchange did not settle")

    def run_until(self, frames: int) -> None:
        """Deliver at most ``frames`` frames (then the test cuts the connection)."""
        for _ in range(frames):
            if not self.queue:
                return
            self.deliver_one()

    def frames(self) -> Iterator[Frame]:
        """What is queued."""
        return iter(self.queue)

    @property
    def in_sync(self) -> bool:
        """Both sessions finished the initial exchange."""
        return all(s.in_sync for s in self.sessions)

    def applied(self, side: int) -> list[Record]:
        """Records side ``side`` stored from this session."""
        return [r for out in self.outputs[side] for r in out.applied]

    def refused(self, side: int) -> int:
        """Records side ``side`` refused in this session."""
        return sum(out.refused for out in self.outputs[side])


def sync(a: Device, b: Device) -> Wire:
    """A complete, undisturbed session between two devices."""
    wire = Wire(a, b)
    wire.run()
    assert wire.in_sync
    return wire


def chaotic_run(wire: Wire, rng: random.Random, max_frames: int = 20_000) -> bool:
    """Deliver with duplicates and out-of-order frames; True if the session survived.

    A duplicated or reordered frame is a protocol violation the receiver must detect;
    nothing of a rejected message may be applied (the caller checks the stores).
    """
    for _ in range(max_frames):
        if not wire.queue:
            return True
        choice = rng.random()
        try:
            if choice < 0.1 and len(wire.queue) > 1:
                i = rng.randrange(1, len(wire.queue))
                frame = wire.queue[i]
                del wire.queue[i]
                wire.deliver_one(frame)
            elif choice < 0.15:
                wire.deliver_one(Frame(wire.queue[0].to, wire.queue[0].data))
            else:
                wire.deliver_one()
        except ProtocolError:
            return False
    raise AssertionError("the exchange did not settle")
