"""Who belongs to the vault: derived from the replicated, signed MEMBER records."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import IntegrityError
from .identity import public_key_of_certificate
from .records import Kind, Membership, Record
from .store import RecordStore


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


def members(store: RecordStore) -> dict[bytes, Member]:
    """Every device the store knows as a member (revoked ones included)."""
    out: dict[bytes, Member] = {}
    for _item, held in store.heads_of_kind(Kind.MEMBER):
        m = member_from_heads(held)
        out[m.device_id] = m
    return out


def current_members(store: RecordStore) -> dict[bytes, Member]:
    """Members that are not revoked: the only devices we talk to."""
    return {k: m for k, m in members(store).items() if not m.revoked}
