"""The two ends of the hand-over: what a member offers, and how a joiner takes it in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wifisync.errors import AlreadyInitialisedError, IntegrityError, PairingError
from wifisync.model.identity import DeviceIdentity
from wifisync.model.membership import Member, current_members, member_records
from wifisync.model.records import VAULT_KEY_ITEM, Membership, Record, member_item_id
from wifisync.model.verifier import InlineVerifier
from wifisync.pairing.messages import MAX_MEMBER_MESSAGE, MAX_OFFER_RECORDS, VaultOffer
from wifisync.store import RecordStore
from wifisync.store.memory import MemoryStore
from wifisync.sync.replica import Replica
from wifisync.vault.unlocked import META_VAULT_ID, read_wrapped_key

#: Room left in the welcome message for framing and the seal.
OFFER_HEADROOM = 64 * 1024


def vault_offer(store: RecordStore, vault_id: bytes) -> VaultOffer:
    """What a new device needs to sync: the membership and the current wrapped key.

    Of the MEMBER records, every revocation and, per (author, device, role), only the
    earliest version: later versions of the same grant change nothing the rule computes,
    so a vault whose members were re-written thousands of times still fits. Sync brings
    everything else.
    """
    with store.transaction():
        earliest: dict[tuple[bytes, bytes, str], Record] = {}
        chosen: list[Record] = []
        for r in member_records(store):
            try:
                body = Membership.decode(r.body)
            except IntegrityError:
                continue
            if body.revoked:
                chosen.append(r)
                continue
            key = (r.header.author, body.device_id, body.role)
            if key not in earliest or r.header.seq < earliest[key].header.seq:
                earliest[key] = r
        chosen.extend(earliest.values())
        chosen.extend(store.heads(VAULT_KEY_ITEM))
    records = [r.encoded for r in sorted(chosen, key=lambda r: (r.header.author, r.header.seq))]
    size = sum(len(r) for r in records)
    if len(records) > MAX_OFFER_RECORDS or size > MAX_MEMBER_MESSAGE - OFFER_HEADROOM:
        raise PairingError(
            f"the vault's membership is too large to hand over in one pairing ({len(records)} "
            f"records, {size // 1024} KiB; the limits are {MAX_OFFER_RECORDS} records and "
            f"{(MAX_MEMBER_MESSAGE - OFFER_HEADROOM) // 1024} KiB)")
    return VaultOffer(vault_id, tuple(records))


def refuse_if_holding_vault(store: RecordStore) -> None:
    """A device that already holds a vault cannot join one (checked before and at writing)."""
    if store.get_meta(META_VAULT_ID) is not None:
        raise AlreadyInitialisedError(
            "this device already holds a vault; `join` works only on a device without one "
            "(use another --home)")


@dataclass(frozen=True, slots=True)
class CheckedOffer:
    """An offer whose records were verified and which makes this device a member."""

    vault_id: bytes
    records: list[Record]
    sponsor: Member  # the member we paired with
    members: dict[bytes, Member]


def check_offer(offer: VaultOffer, identity: DeviceIdentity,
                now_ms: Callable[[], int]) -> CheckedOffer:
    """Verify the hand-over in a scratch store before anything touches the real one.

    Every record must be a signed MEMBER or VAULT_KEY record of the offered vault, we
    must be a current member under our own certificate, the device we paired with is the
    current member that signed our MEMBER record, and a wrapped vault key must be among
    them. (The TLS certificate the member showed was a throwaway one, bound into the
    PAKE: the channel, not that certificate, vouches for the offer.)
    """
    try:
        records = [Record.decode(r) for r in offer.records]
    except IntegrityError as exc:
        raise PairingError(f"the member sent a malformed record: {exc}") from exc
    scratch = MemoryStore()
    scratch.set_meta(META_VAULT_ID, offer.vault_id)
    result = Replica(scratch, offer.vault_id, identity.device_id, verifier=InlineVerifier(),
                     now_ms=now_ms).bootstrap(records)
    if result.refused:
        raise PairingError(f"the member sent {result.refused} record(s) that do not verify")
    members = current_members(scratch)
    me = members.get(identity.device_id)
    if me is None or me.cert_der != identity.cert_der:
        raise PairingError("the member's hand-over does not make this device a member")
    # The member we paired with wrote our newest MEMBER record (a device coming back may
    # hold an older one by another member too).
    mine = [r for r in scratch.heads(member_item_id(identity.device_id))
            if r.header.author in members]
    newest = max(mine, key=lambda r: (r.header.time, r.id)) if mine else None
    sponsor = members.get(newest.header.author) if newest is not None else None
    if sponsor is None or sponsor.device_id == identity.device_id:
        raise PairingError("the device we paired with is not a member of the vault it offered")
    try:
        read_wrapped_key(scratch)
    except Exception as exc:
        raise PairingError("the member's hand-over holds no vault key") from exc
    return CheckedOffer(offer.vault_id, records, sponsor, members)


def readmit(store: RecordStore, offer: CheckedOffer, self_id: bytes,
            now_ms: Callable[[], int]) -> int:
    """Take a hand-over into a store that holds the same vault, keeping everything in it."""
    with store.transaction():
        if store.get_meta(META_VAULT_ID) != offer.vault_id:
            raise PairingError("this device holds another vault; nothing was changed")
        result = Replica(store, offer.vault_id, self_id, verifier=InlineVerifier(),
                         now_ms=now_ms).bootstrap(offer.records)
        if result.refused:
            raise PairingError(f"{result.refused} record(s) of the hand-over did not verify")
    return len(result.applied)


def store_offer(store: RecordStore, offer: CheckedOffer, self_id: bytes,
                now_ms: Callable[[], int]) -> int:
    """Write the vault ID and the records in one transaction; returns how many were stored."""
    with store.transaction():
        refuse_if_holding_vault(store)
        store.set_meta(META_VAULT_ID, offer.vault_id)
        result = Replica(store, offer.vault_id, self_id, verifier=InlineVerifier(),
                         now_ms=now_ms).bootstrap(offer.records)
        if result.refused:
            raise PairingError(f"{result.refused} record(s) of the hand-over did not verify")
    return len(result.applied) + result.duplicates
