"""Writing revocations: the revoker's statement, and every other member's acknowledgement.

A revocation states what its author held of the revoked device (:mod:`wifisync.model.membership`).
A member that learns of a revocation while holding records of that device beyond the cut
signs the same kind of statement for what it held when the news arrived (kept by
:meth:`wifisync.sync.acceptance.Acceptance.note_learned`), so that nothing it took in before
is lost, and every device evaluates that the same way. Records of the device that arrive
after the news are never vouched for, whoever relays them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from wifisync.model.membership import Member, view_of
from wifisync.model.records import Membership, Record, member_item_id
from wifisync.store import RecordStore
from wifisync.sync.acceptance import held_when_revoked_key
from wifisync.vault.author import Author
from wifisync.vault.unlocked import write_member

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Revoked:
    """What writing a revocation did, as far as this device can tell."""

    record: Record
    last_seq: int  # the revoked device's highest record held here (0: none)
    made_inactive: int  # records held here that the revocation made inactive
    kept_paired: list[Member]  # devices it paired that stay members
    lost_paired: list[Member]  # devices it paired whose membership is no longer in force


def revoke(author: Author, target: Member) -> Revoked:
    """Write a revocation of ``target`` stating what this device holds of every member."""
    store = author.store
    with store.transaction():
        known = view_of(store).members
        held = {d: n for d, n in store.origins().items() if d in known}
        inactive_before = store.count_inactive()
        record = write_member(author, Membership(target.cert_der, target.name, revoked=True,
                                                 held=held))
        made_inactive = store.count_inactive() - inactive_before
        after = view_of(store).members
    paired = [m for m in after.values() if m.sponsor == target.device_id]
    return Revoked(record, held.get(target.device_id, 0), made_inactive,
                   [m for m in paired if m.admitted], [m for m in paired if not m.admitted])


def acknowledge(author: Author) -> list[Record]:
    """Sign, for every revoked device this one holds records of beyond its cut, what it holds.

    Does nothing on a device that is not itself a current member. Returns what it wrote.
    """
    store = author.store
    me = author.identity.device_id
    written: list[Record] = []
    with store.transaction():
        view = view_of(store)
        own = view.members.get(me)
        if own is None or not own.current:
            return []
        origins = store.origins()
        for device, m in sorted(view.members.items()):
            then = int(store.get_meta(held_when_revoked_key(device)) or b"0")
            if m.cut is None or device == me or then <= m.cut \
                    or _stated(store, me, device, then):
                continue
            held = {d: n for d, n in origins.items() if d in view.members}
            held[device] = then
            written.append(write_member(author, Membership(m.cert_der, m.name, revoked=True,
                                                           held=held)))
            log.info("acknowledged the revocation of %s: its records up to #%d, held here "
                     "before the news, stay valid", device.hex()[:16], then)
            view = view_of(store)
    return written


def _stated(store: RecordStore, me: bytes, device: bytes, seq: int) -> bool:
    """Whether this device already signed that it holds ``device``'s records up to ``seq``."""
    for r in store.versions(member_item_id(device)):
        if r.header.author == me:
            body = Membership.decode(r.body)
            if body.revoked and body.held.get(device, 0) >= seq:
                return True
    return False
