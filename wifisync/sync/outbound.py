"""What to send a peer, read lazily from the store and cut into bounded batches.

Membership records go first, introducers before the devices they introduce, so the
receiver knows every author before it sees that author's items. Everything else follows
ordered by (origin, seq), read a chunk at a time so a 100k-record vault is never held in
memory at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from wifisync.errors import IntegrityError
from wifisync.model.records import Kind, Membership, Record
from wifisync.store import RecordStore
from wifisync.sync.messages import MAX_BATCH_BYTES, MAX_BATCH_RECORDS

READ_CHUNK = 512
READ_CHUNK_BYTES = 2 * 1024 * 1024  # and at most this much of records per store read


def _subject(record: Record) -> bytes | None:
    """The device a MEMBER record is about."""
    try:
        return Membership.decode(record.body).device_id
    except IntegrityError:
        return None


def member_records_missing(store: RecordStore, peer_seen: Mapping[bytes, int]) -> list[Record]:
    """MEMBER records the peer lacks, each after the record that makes its author known."""
    lacking: list[Record] = []
    introduced: set[bytes] = set()
    for _item, _held in store.heads_of_kind(Kind.MEMBER):
        for r in store.versions(_item):
            if r.header.seq > peer_seen.get(r.header.author, 0):
                lacking.append(r)
            else:
                subject = _subject(r)
                if subject is not None:
                    introduced.add(subject)
    pending = sorted(lacking, key=lambda r: (r.header.author, r.header.seq))
    ordered: list[Record] = []
    while pending:
        ready = ([r for r in pending if r.header.author in introduced]
                 or [r for r in pending if _subject(r) == r.header.author]  # a vault's founder
                 or pending[:1])
        ready_ids = {r.id for r in ready}
        ordered.extend(ready)
        introduced.update(s for s in map(_subject, ready) if s is not None)
        pending = [r for r in pending if r.id not in ready_ids]
    return ordered


def records_missing(store: RecordStore, peer_seen: Mapping[bytes, int]) -> Iterator[bytes]:
    """The bytes of every held record with ``seq > peer_seen[origin]``, MEMBER records
    first (the rest as stored: a sender forwards them without parsing them)."""
    members_first = member_records_missing(store, peer_seen)
    yield from (r.encoded for r in members_first)
    sent = {r.id for r in members_first}
    for origin, top in sorted(store.origins().items()):
        cursor = peer_seen.get(origin, 0)
        while cursor < top:
            chunk = store.encoded_after(origin, cursor, READ_CHUNK, READ_CHUNK_BYTES)
            if not chunk:
                break
            for _seq, rid, encoded in chunk:
                if rid not in sent:
                    yield encoded
            cursor = chunk[-1][0]


def batches(records: Iterable[bytes], first: int | None = None) -> Iterator[list[bytes]]:
    """Cut a stream of encoded records into batches within the count and byte limits.

    With ``first``, the first batch holds at most that many records and each next one
    twice the last, up to the limit: the start of a stream is durable at the receiver
    after a few small commits.
    """
    most = MAX_BATCH_RECORDS if first is None else min(first, MAX_BATCH_RECORDS)
    batch: list[bytes] = []
    size = 0
    for r in records:
        n = len(r)
        if batch and (len(batch) >= most or size + n > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
            most = min(2 * most, MAX_BATCH_RECORDS)
        batch.append(r)
        size += n
    if batch:
        yield batch
