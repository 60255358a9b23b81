"""Who belongs to the vault: a deterministic function of the signed MEMBER records held.

Every device that holds the same MEMBER records computes the same members, roles and
revocations, whatever order they arrived in; nothing here looks at a clock or at the
arrival order. The rule (docs/SECURITY.md, "Membership and revocation", gives the reasons):

- Anchor: the vault ID commits to its creator (:func:`new_vault_id`), who is admitted
  whatever the store holds; the creator's first ``GENESIS_SEQ`` records are never voided.
- Admission: a device is admitted once an admitted device signed a (non-revocation)
  MEMBER record for it, within that author's cut. Its role is ``member`` (holds the vault
  key) only if a ``member``-role author granted it that role; otherwise ``relay``.
- Revocation: a MEMBER record with ``revoked`` set is a statement "device S is revoked,
  and I held S's records up to ``held[S]``". A statement is effective when its author is
  admitted without counting the statement itself, was not itself revoked by an effective
  statement it had seen when writing (``held[author of that] >= its seq``), does not
  disown the records its own admission depends on, and (for a relay) only confirms a
  revocation some other effective statement made. S's cut is the highest ``held[S]`` of the
  effective statements whose authors were in good standing when writing (or the lowest, if
  none was): S's records up to the cut stay valid, later ones are inactive, never deleted.
- Two revocations that do not see each other are both effective (mutual revocation
  revokes both); which one "came first" is never asked, so no clock or order decides.

Work is linear in the MEMBER records when no revocation is held; each effective-set
iteration costs one pass over them per revocation statement.
"""

from __future__ import annotations

import hashlib
import hmac
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from wifisync.errors import IntegrityError
from wifisync.model import crypto
from wifisync.model.identity import public_key_of_certificate
from wifisync.model.records import ROLE_MEMBER, ROLE_RELAY, Kind, Membership, Record, member_item_id
from wifisync.model.verifier import InlineVerifier, RememberingVerifier, Verifier
from wifisync.store import RecordStore

META_VAULT_ID = "vault_id"
VAULT_ID_SIZE = 16
GENESIS_SEQ = 2  # the creator's membership and first wrapped key: never voided
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
    """One device the MEMBER records name, with what the rule makes of it."""

    device_id: bytes
    public_key: bytes
    cert_der: bytes
    name: str
    role: str = ROLE_MEMBER
    admitted: bool = True  # some admitted device signed its membership within its cut
    cut: int | None = None  # revoked: its records with seq above this are inactive
    sponsor: bytes | None = None  # the device whose record admitted it (None: the creator)

    @property
    def revoked(self) -> bool:
        """Whether an effective revocation names this device."""
        return self.cut is not None

    @property
    def current(self) -> bool:
        """Admitted and not revoked: a device we talk to."""
        return self.admitted and self.cut is None

    @property
    def holds_key(self) -> bool:
        """Whether its item records, tombstones and wrapped keys are accepted."""
        return self.role == ROLE_MEMBER

    def signed_while_member(self, seq: int) -> bool:
        """Whether this device's record with sequence number ``seq`` counts."""
        return self.admitted and (self.cut is None or seq <= self.cut)


@dataclass(frozen=True, slots=True, eq=False)
class _Entry:
    """A MEMBER record whose signature and body checked out."""

    record: Record
    body: Membership
    author: bytes
    subject: bytes
    seq: int


@dataclass(slots=True)
class MembershipView:
    """The members, roles and cuts that a set of MEMBER records makes."""

    root: bytes | None = None
    members: dict[bytes, Member] = field(default_factory=dict)
    effective: list[Record] = field(default_factory=list)  # effective revocation statements

    def current(self) -> dict[bytes, Member]:
        """Admitted, unrevoked devices."""
        return {d: m for d, m in self.members.items() if m.current}

    def key_of(self, device: bytes) -> bytes | None:
        """The public key of any device a MEMBER record names (to check its signatures)."""
        m = self.members.get(device)
        return None if m is None else m.public_key

    def counts(self, author: bytes, seq: int, kind: Kind) -> bool:
        """Whether a record by ``author`` at ``seq`` of ``kind`` passes the membership rule."""
        m = self.members.get(author)
        if m is None or not m.signed_while_member(seq):
            return False
        return kind == Kind.MEMBER or m.holds_key


@dataclass(slots=True)
class MembershipMemo:
    """What recomputing one store's membership reuses: checked signatures, parsed bodies."""

    verifier: Verifier = field(default_factory=lambda: RememberingVerifier(InlineVerifier()))
    bodies: dict[bytes, tuple[Membership, bytes] | None] = field(default_factory=dict)

    def parse(self, record: Record) -> tuple[Membership, bytes] | None:
        """A MEMBER record's body and its subject's public key, or None if it is malformed."""
        if record.id in self.bodies:
            return self.bodies[record.id]
        parsed: tuple[Membership, bytes] | None = None
        try:
            body = Membership.decode(record.body)
            if record.header.item == member_item_id(body.device_id):
                parsed = (body, public_key_of_certificate(body.cert_der))
        except (IntegrityError, ValueError):
            parsed = None
        if len(self.bodies) >= _BODIES_MAX:
            self.bodies.clear()
        self.bodies[record.id] = parsed
        return parsed


_BODIES_MAX = 1 << 16


def compute(vault_id: bytes, records: Iterable[Record],
            memo: MembershipMemo | None = None) -> MembershipView:
    """Apply the membership rule to a set of MEMBER records (order does not matter).

    ``memo`` carries what an earlier computation over mostly the same records learnt.
    """
    memo = memo if memo is not None else MembershipMemo()
    keys: dict[bytes, bytes] = {}
    parsed: list[tuple[Record, Membership]] = []
    for r in sorted(records, key=lambda r: r.id):
        if r.header.kind != Kind.MEMBER:
            continue
        p = memo.parse(r)
        if p is None:
            continue
        body, key = p
        keys.setdefault(body.device_id, key)
        parsed.append((r, body))
    root = next((d for d in keys if is_vault_root(vault_id, d)), None)
    if root is None:
        return MembershipView()
    claims = [(r, keys[r.header.author]) for r, _body in parsed
              if r.header.vault == vault_id and r.header.author in keys]
    verdicts = memo.verifier.submit(claims)
    entries = [_Entry(r, body, r.header.author, body.device_id, r.header.seq)
               for r, body in parsed
               if r.header.vault == vault_id and r.header.author in keys
               and verdicts.holds(r, keys[r.header.author])]
    if not any(e.subject == root for e in entries):
        return MembershipView()
    return _Resolver(root, entries, keys).resolve()


class _Resolver:
    """One evaluation of the rule over checked entries."""

    def __init__(self, root: bytes, entries: list[_Entry], keys: dict[bytes, bytes]) -> None:
        self.root = root
        self.keys = keys
        self.by_author: dict[bytes, list[_Entry]] = {}
        self.named: dict[bytes, Membership] = {}  # a body naming each device (its cert, name)
        self.about: dict[bytes, list[_Entry]] = {}  # non-revocation entries per device
        for e in sorted(entries, key=lambda e: (e.author, e.seq, e.record.id)):
            self.named.setdefault(e.subject, e.body)
            if not e.body.revoked:
                self.about.setdefault(e.subject, []).append(e)
            if not e.body.revoked:
                self.by_author.setdefault(e.author, []).append(e)
        self.statements = [e for e in entries if e.body.revoked]
        self.first = self._admit({})[0]  # every device a chain from the root names

    def _admit(self, cuts: Mapping[bytes, int]
               ) -> tuple[dict[bytes, _Entry | None], set[bytes]]:
        """Admitted devices (with the entry that admitted each) and the key holders."""
        admitted: dict[bytes, _Entry | None] = {self.root: None}
        holders = {self.root}

        def admits(e: _Entry) -> bool:
            if e.subject in admitted:
                return False
            admitted[e.subject] = e
            return True

        def grants(e: _Entry) -> bool:  # a grant counts only from a key holder, within its cut
            if e.body.role != ROLE_MEMBER or e.subject not in admitted or e.subject in holders:
                return False
            holders.add(e.subject)
            return True

        self._walk(cuts, admits)
        self._walk(cuts, grants)
        return admitted, holders

    def _walk(self, cuts: Mapping[bytes, int], joins: Callable[[_Entry], bool]) -> None:
        """Breadth-first from the root over each author's entries up to its cut."""
        queue = deque([self.root])
        while queue:
            author = queue.popleft()
            cut = cuts.get(author)
            for e in self.by_author.get(author, ()):
                if cut is not None and e.seq > cut:
                    break
                if joins(e):
                    queue.append(e.subject)

    def _dependency(self, admitted: Mapping[bytes, _Entry | None], device: bytes,
                    on: bytes) -> int:
        """The highest seq of ``on``'s records that ``device``'s admission chain uses."""
        need = 0
        step = admitted.get(device)
        hops = 0
        while step is not None and hops <= len(admitted):
            if step.author == on:
                need = max(need, step.seq)
            step = admitted.get(step.author)
            hops += 1
        return need

    def _cuts(self, effective: Iterable[_Entry], previous: Mapping[bytes, int]
              ) -> dict[bytes, int]:
        by_subject: dict[bytes, list[_Entry]] = {}
        for e in effective:
            by_subject.setdefault(e.subject, []).append(e)
        cuts: dict[bytes, int] = {}
        for subject, stmts in by_subject.items():
            good = [e for e in stmts
                    if previous.get(e.author) is None or e.seq <= previous[e.author]]
            held = [e.body.held.get(subject, 0) for e in (good or stmts)]
            cut = max(held) if good else min(held)
            if subject == self.root:
                cut = max(cut, GENESIS_SEQ)
            cuts[subject] = cut
        return cuts

    def _valid(self, s: _Entry, effective: frozenset[_Entry], cuts: Mapping[bytes, int]
               ) -> bool:
        if s.author not in self.first:
            return False
        others = effective - {s}
        admitted, holders = self._admit(self._cuts(others, cuts))
        if s.author not in admitted:
            return False
        if s.author not in holders and not any(o.subject == s.subject for o in others):
            return False  # a relay confirms revocations; it does not start them
        if any(o is not s and o.subject == s.author and s.body.held.get(o.author, 0) >= o.seq
               for o in effective):
            return False  # written by a device that knew it had been revoked
        return s.body.held.get(s.subject, 0) >= self._dependency(admitted, s.author, s.subject)

    def resolve(self) -> MembershipView:
        effective: frozenset[_Entry] = frozenset()
        cuts: dict[bytes, int] = {}
        ordered = sorted(self.statements, key=lambda e: e.record.id)
        for _ in range(2 * len(ordered) + 2):
            now = frozenset(s for s in ordered if self._valid(s, effective, cuts))
            now_cuts = self._cuts(now, cuts)
            if now == effective and now_cuts == cuts:
                break
            effective, cuts = now, now_cuts
        admitted, holders = self._admit(cuts)
        view = MembershipView(root=self.root,
                              effective=sorted((s.record for s in effective), key=lambda r: r.id))
        revoked_only = {s.subject for s in self.statements if s.author in self.first}
        for device in sorted(set(self.first) | revoked_only):
            entry = admitted.get(device)
            named = entry or self.first.get(device)
            body = named.body if named is not None else self.named[device]
            view.members[device] = Member(
                device_id=device, public_key=self.keys[device], cert_der=body.cert_der,
                name=self._name(device, admitted, cuts, body.name),
                role=ROLE_MEMBER if device in holders else ROLE_RELAY,
                admitted=device in admitted, cut=cuts.get(device),
                sponsor=entry.author if entry is not None else None)
        return view

    def _name(self, device: bytes, admitted: Mapping[bytes, _Entry | None],
              cuts: Mapping[bytes, int], fallback: str) -> str:
        """The name of the latest MEMBER record about ``device`` whose author counts (a
        member, the device itself included, may rename it)."""
        valid = [e for e in self.about.get(device, ())
                 if e.author in admitted and (e.author not in cuts or e.seq <= cuts[e.author])]
        if not valid:
            return fallback
        return max(valid, key=lambda e: (e.record.header.time, e.record.id)).body.name

def member_records(store: RecordStore) -> list[Record]:
    """Every MEMBER record held (every version: revocations live in the history), and
    every one kept aside as a twin: an equivocating author's MEMBER records all count."""
    out: list[Record] = []
    for item, _held in store.heads_of_kind(Kind.MEMBER):
        out.extend(store.versions(item))
    out.extend(store.twin_records(Kind.MEMBER))
    return out


@dataclass(slots=True)
class _Held:
    """A store's membership as last computed, and what computing it again reuses."""

    token: bytes
    vault_id: bytes
    view: MembershipView
    memo: MembershipMemo


# Owned by each store (weakly keyed: it goes with the store), like a cache attribute would be.
_views: weakref.WeakKeyDictionary[RecordStore, _Held] = weakref.WeakKeyDictionary()


def view_of(store: RecordStore) -> MembershipView:
    """The membership the store's records make (kept until a MEMBER record is stored)."""
    vault_id = store.get_meta(META_VAULT_ID)
    if vault_id is None:
        return MembershipView()
    token = store.membership_token()
    held = _views.get(store)
    if held is not None and held.token == token and held.vault_id == vault_id:
        return held.view
    memo = held.memo if held is not None else MembershipMemo()
    view = compute(vault_id, member_records(store), memo)
    if token:
        _views[store] = _Held(token, vault_id, view, memo)
    return view


def remember(store: RecordStore, view: MembershipView) -> MembershipView:
    """Keep ``view`` as the store's membership until its next MEMBER record, for a caller
    that computed it from exactly the MEMBER records the store now holds."""
    vault_id = store.get_meta(META_VAULT_ID)
    token = store.membership_token()
    if vault_id is not None and token:
        held = _views.get(store)
        _views[store] = _Held(token, vault_id, view,
                              held.memo if held is not None else MembershipMemo())
    return view


def named_devices(store: RecordStore) -> dict[bytes, Member]:
    """Every device the MEMBER records name (revoked and no longer admitted ones included)."""
    return view_of(store).members


def current_members(store: RecordStore) -> dict[bytes, Member]:
    """Admitted devices that are not revoked: the only devices we talk to."""
    return view_of(store).current()
