"""The wire and record decoders under mutated valid input: our errors only, bounded memory."""

from __future__ import annotations

from hypothesis import given

from tests.fuzz.mutate import FUZZ, mutated, only_our_errors
from tests.sync.helpers import household
from wifisync.model.codec import vector
from wifisync.model.records import Kind, Membership, Record, RecordHeader, WrappedVaultKey
from wifisync.pairing import messages as pairing
from wifisync.sync.messages import (
    PROTOCOL_VERSION,
    Batch,
    Checkpoint,
    Done,
    Hello,
    IdList,
    Push,
    Summary,
    decode_message,
    encode_message,
)


def _records() -> list[Record]:
    (device,) = household(1)
    device.vault.add("router", fields={"password": "hunter2", "user": "admin"}, tags=["lan"])
    ids = list(device.store.record_ids())
    return [r for rid in ids if (r := device.store.get_record(rid)) is not None]


RECORDS = _records()
DEVICE = bytes(range(32))
FRAME_SEEDS = [encode_message(m) for m in (
    Hello(PROTOCOL_VERSION, bytes(16), vector({DEVICE: 7, bytes(31) + b"\xff": 1}), bytes(32)),
    Batch(3, tuple(r.encoded for r in RECORDS)),
    Checkpoint(3),
    Done(2, 1024),
    Summary(1, vector({DEVICE: 9}), b"\x01" * 32, 5),
    IdList(4, (b"\x00" * 32, b"\x01" * 32), True),
    Push((RECORDS[0].encoded,)),
)]
PAIRING_SEEDS = [pairing.encode(m) for m in (
    pairing.Hello(42, RECORDS[0].body[:64] or b"c", b"s" * pairing.SPAKE_MESSAGE_BYTES),
    pairing.SpakeReply(b"y" * pairing.SPAKE_MESSAGE_BYTES),
    pairing.Confirm(b"m" * pairing.MAC_BYTES, b"sealed"),
    pairing.Welcome(b"m" * pairing.MAC_BYTES, b"sealed offer"),
    pairing.Refusal("wrong pairing code"),
)] + [pairing.encode_intro(pairing.JoinerIntro("laptop")),
      pairing.encode_offer(pairing.VaultOffer(bytes(16), tuple(r.encoded for r in RECORDS)))]
RECORD_SEEDS = [r.encoded for r in RECORDS]


@FUZZ
@given(mutated(FRAME_SEEDS))
def test_the_frame_decoder(data: bytes) -> None:
    only_our_errors(lambda: decode_message(data))


@FUZZ
@given(mutated(PAIRING_SEEDS))
def test_the_pairing_messages(data: bytes) -> None:
    for expected in (pairing.Hello, pairing.SpakeReply, pairing.Confirm, pairing.Welcome):
        only_our_errors(lambda e=expected: pairing.decode(data, e, pairing.MAX_MEMBER_MESSAGE))
    only_our_errors(lambda: pairing.decode_intro(data))
    only_our_errors(lambda: pairing.decode_offer(data))


@FUZZ
@given(mutated(RECORD_SEEDS))
def test_the_record_decoder(data: bytes) -> None:
    def decode_all() -> None:
        record = Record.decode(data)
        RecordHeader.decode(record.header_bytes)
        if record.header.kind == Kind.MEMBER:
            Membership.decode(record.body)
        elif record.header.kind == Kind.VAULT_KEY:
            WrappedVaultKey.decode(record.body)

    only_our_errors(decode_all)


@FUZZ
@given(mutated([r.body for r in RECORDS if r.header.kind != Kind.ITEM]))
def test_the_membership_and_vault_key_bodies(data: bytes) -> None:
    only_our_errors(lambda: Membership.decode(data))
    only_our_errors(lambda: WrappedVaultKey.decode(data))
