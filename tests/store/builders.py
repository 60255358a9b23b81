"""Building signed records with chosen version vectors for store tests."""

from __future__ import annotations

from collections.abc import Callable

from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Kind, Record, RecordHeader, sign_record

VAULT = b"v" * 16

MakeRecord = Callable[..., Record]


def make_record(author: DeviceIdentity, seq: int, item: bytes = b"i" * 16,
                versions: dict[bytes, int] | None = None, deleted: bool = False,
                kind: Kind = Kind.ITEM, body: bytes = b"body", time: int = 1) -> Record:
    """A signed record whose vector is ``versions`` plus the author's own ``seq``."""
    vv = dict(versions or {})
    vv[author.device_id] = seq
    header = RecordHeader(VAULT, item, kind, author.device_id, seq, vv, time, deleted)
    return sign_record(author, header, body)
