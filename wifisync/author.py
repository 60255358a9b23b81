"""Writing this device's own records: next sequence number, version vector, clock, signature."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import sigmarks
from .clock import HybridClock
from .identity import DeviceIdentity
from .records import Kind, Record, RecordHeader, sign_record
from .store import RecordStore
from .versions import join

BodyMaker = Callable[[RecordHeader, list[Record]], bytes]


def wall_ms() -> int:
    """Milliseconds since the epoch from the system clock."""
    return time.time_ns() // 1_000_000


@dataclass
class Author:
    """Signs new records as this device, each dominating every held version of its item."""

    store: RecordStore
    identity: DeviceIdentity
    vault_id: bytes
    clock: HybridClock = field(default_factory=HybridClock)
    now_ms: Callable[[], int] = wall_ms
    _mark_key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._mark_key = sigmarks.mark_key(self.identity)

    def write(self, item: bytes, kind: Kind, make_body: BodyMaker, deleted: bool = False) -> Record:
        """Write one record in one transaction; ``make_body`` sees header and held versions."""
        me = self.identity.device_id
        with self.store.transaction():
            held = self.store.heads(item)
            for r in held:
                self.clock.observe(r.header.time)
            seq = self.store.next_seq(me)
            versions = join(r.header.versions for r in held)
            versions[me] = seq
            header = RecordHeader(
                vault=self.vault_id, item=item, kind=kind, author=me, seq=seq,
                versions=versions, time=self.clock.now(self.now_ms()), deleted=deleted,
            )
            record = sign_record(self.identity, header, make_body(header, held))
            self.store.append(record)
            # Signed here, so valid: reading it back need not verify it again.
            self.store.add_signature_marks({record.id: sigmarks.mark(self._mark_key, record.id)})
        return record
