"""The two ends of the hand-over: what a member offers, and how a joiner takes it in."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import AlreadyInitialisedError, IntegrityError, PairingError
from ..identity import DeviceIdentity
from ..membership import Member, current_members
from ..records import Kind, Record, member_item_id
from ..store import RecordStore
from ..store.memory import MemoryStore
from ..sync.replica import Replica
from ..vault import META_VAULT_ID, read_wrapped_key
from .messages import MAX_MEMBER_MESSAGE, MAX_OFFER_RECORDS, VaultOffer

#: Room left in the welcome message for framing and the seal.
OFFER_HEADROOM = 64 * 1024


def vault_offer(store: RecordStore, vault_id: bytes) -> VaultOffer:
    """Every MEMBER and VAULT_KEY record a member holds: what a new device needs to sync."""
    records: list[bytes] = []
    with store.transaction():
        for kind in (Kind.MEMBER, Kind.VAULT_KEY):
            for item, _held in store.heads_of_kind(kind):
                records.extend(r.encoded for r in store.versions(item))
    if (len(records) > MAX_OFFER_RECORDS
            or sum(len(r) for r in records) > MAX_MEMBER_MESSAGE - OFFER_HEADROOM):
        raise PairingError("the vault's membership history is too large to hand over")
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


def check_offer(offer: VaultOffer, identity: DeviceIdentity) -> CheckedOffer:
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
    result = Replica(scratch, offer.vault_id, identity.device_id,
                     parallel=False).bootstrap(records)
    if result.refused:
        raise PairingError(f"the member sent {result.refused} record(s) that do not verify")
    members = current_members(scratch)
    me = members.get(identity.device_id)
    if me is None or me.cert_der != identity.cert_der:
        raise PairingError("the member's hand-over does not make this device a member")
    mine = scratch.heads(member_item_id(identity.device_id))
    sponsor = members.get(mine[0].header.author) if len(mine) == 1 else None
    if sponsor is None or sponsor.device_id == identity.device_id:
        raise PairingError("the device we paired with is not a member of the vault it offered")
    try:
        read_wrapped_key(scratch)
    except Exception as exc:
        raise PairingError("the member's hand-over holds no vault key") from exc
    return CheckedOffer(offer.vault_id, records, sponsor, members)


def store_offer(store: RecordStore, offer: CheckedOffer, self_id: bytes) -> int:
    """Write the vault ID and the records in one transaction; returns how many were stored."""
    with store.transaction():
        refuse_if_holding_vault(store)
        store.set_meta(META_VAULT_ID, offer.vault_id)
        result = Replica(store, offer.vault_id, self_id, parallel=False).bootstrap(offer.records)
        if result.refused:
            raise PairingError(f"{result.refused} record(s) of the hand-over did not verify")
    return len(result.applied) + result.duplicates
