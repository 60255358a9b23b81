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
"""

from __future__ import annotations

import hashlib
import hmac

from wifisync.model import crypto
from wifisync.model.identity import DeviceIdentity

MARK_BYTES = 16
_PERSON = b"wifisync-sigmark"  # BLAKE2b personalisation: these tags and no other


def mark_key(identity: DeviceIdentity) -> bytes:
    """This device's key for signature marks (a purpose-bound sub-key of its device key)."""
    return crypto.derive_key(identity.private_key.private_bytes_raw(), "signature-mark")


def mark(key: bytes, record_id: bytes) -> bytes:
    """The mark saying "this device checked the signature of exactly this record"."""
    return hashlib.blake2b(record_id, digest_size=MARK_BYTES, key=key, person=_PERSON).digest()


def is_marked(key: bytes, record_id: bytes, stored: bytes | None) -> bool:
    """Whether ``stored`` is this device's mark for ``record_id``."""
    return stored is not None and hmac.compare_digest(mark(key, record_id), stored)
