"""Who belongs to the vault: derived from the replicated, signed MEMBER records.

Trust is a chain anchored in the vault ID: its first bytes commit to the device that
created the vault (:func:`new_vault_id`), so the creator is a member whatever the store
holds. Any other device is a member only while a held version of its MEMBER item was
written by a device already trusted, so a self-signed MEMBER record of a stranger counts
for nothing. (Signatures themselves are checked where records enter or are read.)
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from . import crypto
from .errors import IntegrityError
from .identity import public_key_of_certificate
from .records import Kind, Membership, Record, member_item_id
from .store import RecordStore

META_VAULT_ID = "vault_id"
VAULT_ID_SIZE = 16
_ROOT_TAG_SIZE = 12  # bytes of the vault ID that commit to the creator: 96-bit second preimage
_ROOT_DOMAIN = b"wifisync vault root\x00"


def _root_tag(device_id: bytes) -> bytes:
    return hashlib.sha256(_ROOT_DOMAIN + device_id).digest()[:_ROOT_TAG_SIZE]


def new_vault_id(creator_device_id: bytes) -> bytes:
    """A fresh vault ID that names its creator as the root of the membership chain."""
    return _root_tag(creator_device_id) + crypto.random_bytes(VAULT_ID_SIZE - _ROOT_TAG_SIZE)


def is_vault_root(vault_id: bytes, device_id: bytes) -> bool:
    """Whether ``device_id`` created the vault ``vault_id``."""
    return hmac.compare_digest(vault_id[:_ROOT_TAG_SIZE], _root_tag(device_id))


@dataclass(frozen=True, slots=True)
class Member:
    """One device of the vault as the membership records describe it."""

    device_id: bytes
    public_key: bytes
    cert_der: bytes
    name: str
    revoked_after: int | None

    @property
    def revoked(self) -> bool:
        """Whether a revocation record for this device is held."""
        return self.revoked_after is not None


def member_from_heads(held: list[Record]) -> Member:
    """Merge the held versions of one member item: a revocation in any version wins."""
    bodies = [Membership.decode(r.body) for r in held]
    device_ids = {m.device_id for m in bodies}
    if len(device_ids) != 1:
        raise IntegrityError("member item holds versions about different devices")
    revocations = [m.revoked_after for m in bodies if m.revoked_after is not None]
    first = max(bodies, key=lambda m: (m.revoked_after is None, m.name))
    return Member(
        device_id=first.device_id,
        public_key=public_key_of_certificate(first.cert_der),
        cert_der=first.cert_der,
        name=first.name,
        revoked_after=min(revocations) if revocations else None,
    )


_VERIFIED_MAX = 4096
_verified: dict[tuple[bytes, bytes], bool] = {}  # (record ID, key) -> signature valid


def _signed_by(record: Record, key: bytes) -> bool:
    """Whether ``key`` signed ``record``; remembered, as a record ID covers its signature."""
    known = _verified.get((record.id, key))
    if known is None:
        try:
            record.verify(key)
            known = True
        except IntegrityError:
            known = False
        if len(_verified) >= _VERIFIED_MAX:
            _verified.clear()
        _verified[(record.id, key)] = known
    return known


def _written_by_member(record: Record, chain: dict[bytes, Member]) -> bool:
    """Whether a chained device signed ``record`` while it was a member."""
    author = chain.get(record.header.author)
    return author is not None \
        and (author.revoked_after is None or record.header.seq <= author.revoked_after) \
        and _signed_by(record, author.public_key)


def members(store: RecordStore) -> dict[bytes, Member]:
    """Every device the chain from the vault's creator makes a member (revoked ones included).

    A device joins the chain once any version of its MEMBER item (held or superseded) was
    signed by a device already in it; its state comes from the held versions that chained
    devices signed. Versions from outside the chain are ignored here and fail the checks
    of whoever reads them.
    """
    vault_id = store.get_meta(META_VAULT_ID)
    if vault_id is None:
        return {}
    heads: dict[bytes, tuple[bytes, list[Record]]] = {}
    for item, held in store.heads_of_kind(Kind.MEMBER):
        subject = Membership.decode(held[0].body).device_id
        if item == member_item_id(subject):
            heads[subject] = (item, held)
    root = next((d for d in heads if is_vault_root(vault_id, d)), None)
    if root is None:
        return {}
    chain = {root: member_from_heads(heads[root][1])}
    logs = {d: store.versions(item) for d, (item, _held) in heads.items() if d != root}
    grown = True
    while grown:
        grown = False
        for device, log in logs.items():
            if device not in chain and any(_written_by_member(r, chain) for r in log):
                chain[device] = member_from_heads(heads[device][1])
                grown = True
    out: dict[bytes, Member] = {}
    for device in chain:
        vouched = [r for r in heads[device][1] if _written_by_member(r, chain)]
        if vouched:
            out[device] = member_from_heads(vouched)
        elif device == root:
            out[device] = chain[device]
    return out


def current_members(store: RecordStore) -> dict[bytes, Member]:
    """Members that are not revoked: the only devices we talk to."""
    return {k: m for k, m in members(store).items() if not m.revoked}
