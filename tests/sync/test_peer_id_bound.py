"""A peer's record-ID lists are bounded: 2^21 IDs per exchange (64 MiB as bytes), then refused."""

from __future__ import annotations

import pytest

from tests.sync.helpers import household
from wifisync.errors import ProtocolError
from wifisync.model.codec import vector
from wifisync.sync.messages import (
    MAX_IDS_PER_LIST,
    PROTOCOL_VERSION,
    Done,
    Hello,
    IdList,
    Summary,
    encode_message,
)
from wifisync.sync.session import MAX_PEER_IDS, SyncSession

OTHER_FINGERPRINT = b"\x01" * 32  # differs from the device's: the peer holds "something else"


def test_a_peer_listing_more_than_the_bound_of_record_ids_is_refused_at_the_bound() -> None:
    (device,) = household(1)
    session = SyncSession(device.replica, b"\x02" * 32, now=0.0)
    session.start(0.0)
    seen = device.store.seen()
    vault_id = device.replica.vault_id
    # Nothing is missing by seq, yet the fingerprints differ: after an empty round the
    # session falls back to exchanging record IDs, where the peer then floods it.
    hello = Hello(PROTOCOL_VERSION, vault_id, vector(seen), OTHER_FINGERPRINT)
    session.receive(encode_message(hello), 0)
    session.receive(encode_message(Done(0, 0)), 0)
    session.receive(encode_message(Summary(1, vector(seen), OTHER_FINGERPRINT, 0)), 0)
    chunks = MAX_PEER_IDS // MAX_IDS_PER_LIST
    for serial in range(chunks):
        first = serial * MAX_IDS_PER_LIST
        ids = tuple(i.to_bytes(32, "big") for i in range(first + 1, first + MAX_IDS_PER_LIST + 1))
        session.receive(encode_message(IdList(serial, ids, False)), 0)  # up to the bound: kept
    one_more = ((MAX_PEER_IDS + 1).to_bytes(32, "big"),)
    with pytest.raises(ProtocolError, match=f"more than {MAX_PEER_IDS} record IDs"):
        session.receive(encode_message(IdList(chunks, one_more, False)), 0)
