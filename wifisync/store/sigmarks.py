"""Marks this device keeps for records whose signature it has checked, to skip re-checking.

Listing a vault checks the Ed25519 signature of every held record, so an altered store
never reads as valid; for 10k items that is most of the time `wifisync list` takes. A
signature's validity depends on the record's bytes alone (an author's key is fixed by its
device ID, the hash of that key), so once this device has checked a record it can say so:
it stores ``mark = BLAKE2b-128(key=K, record ID)`` with ``K`` derived from its own device
key, and later accepts a record whose stored mark matches instead of verifying again.
The marks live in the store, which an attacker may rewrite, but making one needs ``K``,
which never leaves ``device.key`` (mode 0600, outside the store); whoever can read that
file can sign records as this member anyway. See docs/SECURITY.md, "Signature marks".

A daemon accepting a batch by sync marks the whole batch at once: one *set mark*,
``BLAKE2b-128(key=K, the batch's record IDs sorted)`` under its own personalisation,
stored for the run of store rows the batch took. A reader recomputes it over the IDs
those rows hold now; any record changed, added or taken out of the run voids the mark
for the whole run (those records are then verified), and a set mark never passes for a
record mark or the other way round. Marking 100k records one by one costs an initial
sync 1.7 s; one mark per batch costs almost nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import Iterable, Sequence

from wifisync.errors import StoreError
from wifisync.model import crypto
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Record
from wifisync.store.base import RecordStore

MARK_BYTES = 16
_PERSON = b"wifisync-sigmark"  # BLAKE2b personalisation: these tags and no other
_SET_PERSON = b"wifisync-sigset"  # and set marks, which never pass for record marks


def mark_key(identity: DeviceIdentity) -> bytes:
    """This device's key for signature marks (a purpose-bound sub-key of its device key)."""
    return crypto.derive_key(identity.seed, "signature-mark")


def mark(key: bytes, record_id: bytes) -> bytes:
    """The mark saying "this device checked the signature of exactly this record"."""
    return hashlib.blake2b(record_id, digest_size=MARK_BYTES, key=key, person=_PERSON).digest()


def is_marked(key: bytes, record_id: bytes, stored: bytes | None) -> bool:
    """Whether ``stored`` is this device's mark for ``record_id``."""
    return stored is not None and hmac.compare_digest(mark(key, record_id), stored)


def set_mark(key: bytes, record_ids: Iterable[bytes]) -> bytes:
    """The mark saying "this device checked the signature of exactly these records"."""
    return hashlib.blake2b(b"".join(sorted(record_ids)), digest_size=MARK_BYTES, key=key,
                           person=_SET_PERSON).digest()


def covered(key: bytes, sets: Iterable[tuple[Sequence[bytes], bytes]]) -> set[bytes]:
    """The record IDs of those stored sets whose mark is this device's mark over them."""
    out: set[bytes] = set()
    for ids, stored in sets:
        if hmac.compare_digest(set_mark(key, ids), stored):
            out.update(ids)
    return out


def mark_accepted(store: RecordStore, key: bytes, records: Sequence[Record]) -> None:
    """Mark records just checked and stored together (a store that cannot be written only
    costs the next read its checks)."""
    if records:
        ids = [r.id for r in records]
        with contextlib.suppress(StoreError):
            store.add_signature_set(ids, set_mark(key, ids))
