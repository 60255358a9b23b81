"""The one writer of MEMBER records: admitting, granting, revoking and acknowledging.

Every membership change a device signs goes through :func:`write_member`, which re-judges
the records the change touches in the same transaction; the policy of who may write which
change lives here too, so the CLI and the daemon's pairing service only call it.

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

from wifisync.errors import PairingError, UsageError
from wifisync.model.membership import Member, view_of
from wifisync.model.records import ROLE_MEMBER, Kind, Membership, Record, member_item_id
from wifisync.store import RecordStore
from wifisync.sync.acceptance import Acceptance, held_when_revoked_key
from wifisync.vault.author import Author

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Revoked:
    """What writing a revocation did, as far as this device can tell."""

    record: Record
    last_seq: int  # the revoked device's highest record held here (0: none)
    made_inactive: int  # records held here that the revocation made inactive
    kept_paired: list[Member]  # devices it paired that stay members
    lost_paired: list[Member]  # devices it paired whose membership is no longer in force


class AlreadyRevokedError(UsageError):
    """The device to revoke is revoked already: nothing was written."""


def write_member(author: Author, membership: Membership) -> Record:
    """Write a MEMBER record as ``author`` and re-judge the records its change touches."""
    accept = Acceptance(author.store, author.vault_id, author.now_ms)
    body = membership.encode()
    with author.store.transaction():
        record = author.write(member_item_id(membership.device_id), Kind.MEMBER,
                              lambda _h, _held: body)
        before = accept.view
        accept.refresh()
        accept.rejudge(before)
    return record


def admit(author: Author, cert_der: bytes, name: str, role: str) -> Record:
    """Make a device that just paired a member (or relay); a revoked device never comes back."""
    membership = Membership(cert_der, name, role=role)
    known = view_of(author.store).members.get(membership.device_id)
    if known is not None and known.revoked:
        raise PairingError("this device was removed from the vault; it cannot join again "
                           "with the same identity")
    return write_member(author, membership)


def grant(author: Author, target: Member) -> bool:
    """Give a relay the member role; False when it holds it already.

    Only a current member that holds the key grants, and only to a current member.
    """
    me = view_of(author.store).members.get(author.identity.device_id)
    if me is None or not me.current or not me.holds_key:
        raise UsageError("only a current member that holds the key can grant roles")
    if not target.current:
        raise UsageError(f"{target.name} is not a current member; pair it again first")
    if target.holds_key:
        return False
    write_member(author, Membership(target.cert_der, target.name, role=ROLE_MEMBER))
    return True


def revoke(author: Author, target: Member) -> Revoked:
    """Write a revocation of ``target`` stating what this device holds of every member.

    Raises :class:`UsageError` for this device itself (another member revokes it) and
    :class:`AlreadyRevokedError` when ``target`` is revoked already.
    """
    store = author.store
    if target.device_id == author.identity.device_id:
        raise UsageError("a device cannot revoke itself; revoke it from another member")
    if target.revoked:
        raise AlreadyRevokedError(f"{target.name} is already revoked")
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
