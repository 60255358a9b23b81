"""The unlocked vault: items read as their merged state, written as signed, encrypted records."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Self

from wifisync.errors import (
    AlreadyInitialisedError,
    IntegrityError,
    ItemNotFoundError,
    NotInitialisedError,
    StoreError,
    UsageError,
)
from wifisync.model import crypto
from wifisync.model.identity import DeviceIdentity
from wifisync.model.items import (
    ATTACHMENT_PREFIX,
    ITEM_TYPES,
    AttachmentRef,
    ItemState,
    merge_states,
)
from wifisync.model.membership import META_VAULT_ID as META_VAULT_ID  # the meta key callers read
from wifisync.model.membership import MembershipView, new_vault_id, view_of
from wifisync.model.records import (
    ITEM_ID_BYTES,
    VAULT_KEY_ITEM,
    Kind,
    Membership,
    Record,
    WrappedVaultKey,
    open_item_body,
    payload_key,
    seal_item_body,
)
from wifisync.model.verifier import Claim, InlineVerifier, Verifier
from wifisync.store import RecordStore, sigmarks
from wifisync.vault import lookup, titlesearch
from wifisync.vault.author import Author, Write
from wifisync.vault.threadverifier import ThreadVerifier

VERIFY_CHUNK = 2000  # records loaded at a time by verify_all
VERIFY_BYTES = 2 * 1024 * 1024  # and at most this much of them (attachment chunks are large)


@dataclass(frozen=True, slots=True)
class ItemView:
    """An item as the user sees it: merged, decrypted, with its pending conflict count."""

    id: bytes
    state: ItemState
    conflicts: int

    @property
    def id_text(self) -> str:
        """The item ID as the CLI shows it."""
        return self.id.hex()


def vault_id_of(store: RecordStore) -> bytes:
    """The vault this store belongs to."""
    vid = store.get_meta(META_VAULT_ID)
    if vid is None:
        raise NotInitialisedError("this device holds no vault; run `wifisync init` to create "
                                  "one, or `wifisync join CODE` to join one")
    return vid


def read_wrapped_key(store: RecordStore) -> WrappedVaultKey:
    """The current wrapped vault key; concurrent password changes resolve by the later one."""
    held = store.heads(VAULT_KEY_ITEM)
    if not held:
        raise NotInitialisedError(
            "this device has not received the vault yet; start the daemon (`wifisync daemon`, "
            "or its service) so it syncs with another member")
    latest = max(held, key=lambda r: (r.header.time, r.id))
    return WrappedVaultKey.decode(latest.body)


class AuthorCheck:
    """Checks that records read from the store were signed by members, so an altered store
    never reads as valid.

    The store checks that each record still hashes to its ID; this catches the edit that
    also rewrote the ID. Keys come from the membership records and are re-read when an
    unknown author appears (a device paired since); signatures go to the ``verifier``.
    With this device's ``mark_key``, a record whose signature this device already checked
    carries a valid mark (:mod:`wifisync.store.sigmarks`) and is not verified again; its
    author must still be a member.
    """

    def __init__(self, store: RecordStore, verifier: Verifier,
                 mark_key: bytes | None = None) -> None:
        self.store = store
        self.verifier = verifier
        self._keys: dict[bytes, bytes] = {}
        self._view = MembershipView()
        self._mark_key = mark_key

    def check(self, record: Record) -> None:
        """Raise :class:`IntegrityError` unless a member of the vault signed exactly this."""
        self.check_all([record])

    def check_all(self, records: list[Record]) -> None:
        """Check every record of a list (the verifier may split long ones over the cores)."""
        if any(r.header.author not in self._keys for r in records):
            self._refresh_keys()
        keys = self._keys
        for r in records:
            h = r.header
            # A MEMBER record of a device revoked since counts for what the rule makes of
            # it; every other held version must have been written while its author counted.
            if keys.get(h.author) is None or (
                    h.kind != Kind.MEMBER and not self._view.counts(h.author, h.seq, h.kind)):
                raise _not_a_member(r)
        unmarked = records
        if self._mark_key is not None:
            key = self._mark_key
            stored = self.store.signature_marks([r.id for r in records])
            unmarked = [r for r in records if not sigmarks.is_marked(key, r.id, stored.get(r.id))]
            if unmarked:  # accepted by this device's daemon: marked a batch at a time
                done = sigmarks.covered(key, self.store.signature_sets([r.id for r in unmarked]))
                unmarked = [r for r in unmarked if r.id not in done]
        self.check_signatures(unmarked)
        if self._mark_key is not None and unmarked:
            key = self._mark_key
            # A store we cannot write (read-only, full) only costs the next read its time.
            with contextlib.suppress(StoreError):
                self.store.add_signature_marks(
                    {r.id: sigmarks.mark(key, r.id) for r in unmarked})

    def check_signatures(self, records: list[Record]) -> None:
        """Check only that each record's author, as any MEMBER record names it, signed it."""
        claims: list[Claim] = []
        for r in records:
            key = self.key_of(r.header.author)
            if key is None:
                raise _not_a_member(r)
            claims.append((r, key))
        verdicts = self.verifier.submit(claims)
        for r, key in claims:
            if not verdicts.holds(r, key):
                raise IntegrityError(f"{_where(r)} has a bad signature; the store was altered")

    def key_of(self, author: bytes) -> bytes | None:
        """The public key any MEMBER record gives ``author`` (None: no record names it)."""
        if author not in self._keys:
            self._refresh_keys()
        return self._keys.get(author)

    def _refresh_keys(self) -> None:
        try:
            self._view = view_of(self.store)
            self._keys = {d: m.public_key for d, m in self._view.members.items()}
        except IntegrityError as exc:
            raise IntegrityError(f"a membership record failed its integrity check ({exc}); "
                                 "the store was altered") from None


def _where(record: Record) -> str:
    return f"record {record.id.hex()[:16]} of item {record.header.item.hex()}"


def _not_a_member(record: Record) -> IntegrityError:
    return IntegrityError(f"{_where(record)} names an author that was not a member (with that "
                          "role) when it wrote it; the store was altered")


def check_membership_and_key(store: RecordStore) -> None:
    """Check the signatures of the MEMBER and VAULT_KEY heads a vault opens with.

    A handful of records, checked inline and without marks: a wrong password writes nothing.
    """
    signatures = AuthorCheck(store, InlineVerifier())
    for _item, held in store.heads_of_kind(Kind.MEMBER):
        signatures.check_all(held)
    signatures.check_all(store.heads(VAULT_KEY_ITEM))


class Vault:
    """Read and write items with the vault key in hand."""

    def __init__(self, store: RecordStore, identity: DeviceIdentity, vault_key: bytes,
                 verifier: Verifier | None = None) -> None:
        self.store = store
        self.identity = identity
        self.vault_key = vault_key  # also derives the payload key
        self.vault_id = vault_id_of(store)
        self.author = Author(store, identity, self.vault_id)
        self.verifier: Verifier = verifier if verifier is not None else ThreadVerifier()
        self.signatures = AuthorCheck(store, self.verifier, sigmarks.mark_key(identity))
        self.unreadable: list[bytes] = []  # items the last items() could not read
        self._together: dict[bytes, Write] | None = None  # writes writing_together() holds

    @property
    def vault_key(self) -> bytes:
        """The vault key (set to ``b""`` to forget it and the key derived from it)."""
        return self._vault_key

    @vault_key.setter
    def vault_key(self, key: bytes) -> None:
        self._vault_key = key
        self._payload_key = payload_key(key) if key else b""

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    def create(cls, store: RecordStore, identity: DeviceIdentity, device_name: str,
               password: str, kdf: crypto.KdfParams | None = None) -> Vault:
        """Make a new vault whose first member is this device."""
        if store.get_meta(META_VAULT_ID) is not None:
            raise AlreadyInitialisedError("this device already holds a vault")
        vault_key = crypto.random_bytes(crypto.KEY_SIZE)
        kdf = kdf or crypto.KdfParams.fresh()
        with store.transaction():
            store.set_meta(META_VAULT_ID, new_vault_id(identity.device_id))
            vault = cls(store, identity, vault_key)
            vault.write_member(Membership(identity.cert_der, device_name))
            vault._write_wrapped_key(password, kdf)
        return vault

    @classmethod
    def unlock(cls, store: RecordStore, identity: DeviceIdentity, password: str) -> Vault:
        """Check the vault's membership and key records, then unwrap the vault key."""
        check_membership_and_key(store)
        wrapped = read_wrapped_key(store)
        key = crypto.unwrap_vault_key(wrapped.wrapped, password, wrapped.kdf)
        return cls(store, identity, key)

    @classmethod
    def with_key(cls, store: RecordStore, identity: DeviceIdentity, vault_key: bytes) -> Self:
        """Open with a vault key unwrapped earlier (the unlock agent's): no Argon2id."""
        check_membership_and_key(store)
        return cls(store, identity, vault_key)

    def change_password(self, new_password: str, kdf: crypto.KdfParams | None = None) -> None:
        """Re-wrap the same vault key under a new master password (a new salt each time)."""
        old = read_wrapped_key(self.store).kdf
        self._write_wrapped_key(new_password, kdf or old.raised())

    def _write_wrapped_key(self, password: str, kdf: crypto.KdfParams) -> None:
        body = WrappedVaultKey(kdf, crypto.wrap_vault_key(self.vault_key, password, kdf)).encode()
        self.author.write(VAULT_KEY_ITEM, Kind.VAULT_KEY, lambda _h, _held: body)

    def write_member(self, membership: Membership) -> Record:
        """Write a membership (or revocation) record for a device; re-judge what it touches."""
        from wifisync.vault.members import write_member  # the sync package: not for reads

        return write_member(self.author, membership)

    # --- reading --------------------------------------------------------------------------

    def _state(self, record: Record) -> ItemState:
        """Decrypt a version whose signature was checked; tampering is named with the record."""
        try:
            state = ItemState.from_payload(open_item_body(self._payload_key, record))
        except IntegrityError as exc:
            raise IntegrityError(f"record {record.id.hex()[:16]} of item "
                                 f"{record.header.item.hex()} failed its integrity check "
                                 f"({exc}); the store was altered") from None
        # A cell cannot be newer than the record that carries it: a member's planted
        # far-future cell time wins a field merge no longer than its record's time would.
        state.clamp_times(record.header.time)
        return state

    def _view(self, item: bytes, held: list[Record], checked: bool = False) -> ItemView | None:
        if not checked:
            self.signatures.check_all(held)
        live = [r for r in held if not r.header.deleted]
        if not live:
            return None
        return ItemView(item, merge_states(self._state(r) for r in live), len(held) - 1)

    def items(self) -> list[ItemView]:
        """Every readable item that is not deleted, sorted by title (see :meth:`iter_items`)."""
        return sorted(self.iter_items(), key=lambda v: (v.state.title.lower(), v.id))

    def iter_items(self) -> Iterator[ItemView]:
        """Every readable item that is not deleted, in no order, streamed in batches from
        one snapshot of the store: memory stays bounded whatever the vault's size.

        An item whose held versions fail a check (signature, author, decryption, shape)
        is left out and its ID kept in :attr:`unreadable`; the others are still given.
        """
        self.unreadable = []
        for batch in self.store.stream_heads(Kind.ITEM):
            groups = [(item, held) for item, held in batch if held is not None]
            self.unreadable += [item for item, held in batch if held is None]
            try:
                self.signatures.check_all([r for _item, held in groups for r in held])
                checked = True
            except IntegrityError:
                checked = False  # find the failing items one by one below
            for item, held in groups:
                try:
                    view = self._view(item, held, checked=checked)
                except IntegrityError:
                    self.unreadable.append(item)
                    continue
                if view is not None:
                    yield view

    def get(self, item: bytes) -> ItemView:
        """One item by ID."""
        view = self._view(item, self.store.heads(item))
        if view is None:
            raise ItemNotFoundError(f"no item {item.hex()}")
        return view

    def resolve(self, ref: str) -> bytes:
        """Find an item by full ID (deleted ones too), unique ID prefix, or title (see lookup)."""
        ref_l = ref.strip().lower()
        if len(ref_l) == 2 * ITEM_ID_BYTES and all(c in "0123456789abcdef" for c in ref_l):
            held = self.store.heads(bytes.fromhex(ref_l))
            if held and held[0].header.kind == Kind.ITEM:
                return bytes.fromhex(ref_l)
        return lookup.resolve(ref, self._candidates(ref, ref_l))

    def _candidates(self, ref: str, ref_l: str) -> list[tuple[bytes, str]]:
        """``(ID, title)`` of the readable live items ``ref`` may name by ID prefix (found
        in SQL) or by title (by title tags, see titlesearch): all :func:`lookup.resolve`
        needs, without reading the whole vault."""
        found = set(titlesearch.items_titled(self.store, self.vault_key, ref))
        if len(ref_l) >= lookup.MIN_PREFIX and set(ref_l) <= lookup.HEX:
            found.update(self.store.held_items_with_prefix(Kind.ITEM, ref_l))
        pairs = []
        for item in sorted(found):
            try:
                view = self._view(item, self.store.heads(item))
            except IntegrityError:
                continue  # unreadable: not named, as `list` does not show it
            if view is not None:
                pairs.append((item, view.state.title))
        return pairs

    def history(self, item: bytes) -> list[tuple[Record, ItemState | None]]:
        """Every version of an item in the log, oldest first (``None`` for a delete)."""
        versions = self.store.versions(item)
        if not versions or versions[0].header.kind != Kind.ITEM:
            raise ItemNotFoundError(f"no item {item.hex()}")
        self.signatures.check_all(versions)
        return [(r, None if r.header.deleted else self._state(r)) for r in versions]

    # --- writing --------------------------------------------------------------------------

    @contextlib.contextmanager
    def writing_together(self) -> Iterator[None]:
        """Hold the item writes made inside and write them at the end, in one transaction
        and signed together (an import: one signature per tree of records).

        A second write to an item already held writes the held ones first; reads inside do
        not see held writes (the import reads nothing it wrote in the same batch).
        """
        self._together = {}
        try:
            yield
            self._write_held()
        finally:
            self._together = None

    def _write_held(self) -> None:
        """Write the item writes ``writing_together`` holds."""
        held, self._together = self._together or {}, {}
        if held:
            self.author.write_many(list(held.values()))

    def _write_item(self, item: bytes, change: Mapping[str, object], deleted: bool = False
                    ) -> None:
        def body(header: object, held: list[Record]) -> bytes:
            if deleted:
                return b""
            self.signatures.check_all(held)
            live = [r for r in held if not r.header.deleted]
            state = merge_states(self._state(r) for r in live) if live else ItemState()
            for key, value in change.items():
                state.set(key, value, header.time)  # type: ignore[attr-defined]
            return seal_item_body(self._payload_key, header, state.to_payload())  # type: ignore[arg-type]

        if self._together is None:
            self.author.write(item, Kind.ITEM, body, deleted=deleted)
            return
        if item in self._together:
            self._write_held()
        self._together[item] = Write(item, Kind.ITEM, body, deleted)

    def add(self, title: str, type_: str = "login", fields: Mapping[str, str] | None = None,
            tags: Sequence[str] = (), hidden: Sequence[str] = (), source: str | None = None
            ) -> bytes:
        """Create an item; returns its new ID (``hidden``: masked fields, ``source``: import)."""
        import uuid  # only writers need it

        _check_type(type_)
        item = uuid.uuid4().bytes
        change: dict[str, object] = {"title": title, "type": type_, "tags": sorted(set(tags))}
        if hidden:
            change["hidden"] = sorted(set(hidden))
        if source is not None:
            change["source"] = source
        change.update({f"field:{k}": v for k, v in (fields or {}).items()})
        self._write_item(item, change)
        return item

    def edit(self, item: bytes, title: str | None = None,
             fields: Mapping[str, str] | None = None, unset: Sequence[str] = (),
             tags: Sequence[str] | None = None, type_: str | None = None,
             hidden: Sequence[str] | None = None, source: str | None = None) -> None:
        """Change some attributes or fields of an item (also settles pending conflicts)."""
        current = self.get(item)
        change: dict[str, object] = {}
        if hidden is not None:
            change["hidden"] = sorted(set(hidden))
        if source is not None:
            change["source"] = source
        if title is not None:
            change["title"] = title
        if type_ is not None:
            _check_type(type_)
            change["type"] = type_
        if tags is not None:
            change["tags"] = sorted(set(tags))
        change.update({f"field:{k}": v for k, v in (fields or {}).items()})
        for name in unset:
            if name not in current.state.values:
                raise UsageError(f"item has no field {name!r}")
            change[f"field:{name}"] = None
        self._write_item(item, change)

    def edit_attachments(self, item: bytes, refs: Mapping[str, AttachmentRef | None]) -> None:
        """Attach files (their stored chunks' reference) or detach them (``None``) by name."""
        self.get(item)
        self._write_item(item, {ATTACHMENT_PREFIX + name: None if ref is None else ref.to_value()
                                for name, ref in refs.items()})

    def delete(self, item: bytes) -> None:
        """Delete an item (a tombstone that dominates every held version).

        Nothing is decrypted: an item that cannot be read can still be deleted.
        """
        held = self.store.heads(item)
        if not held or held[0].header.kind != Kind.ITEM or all(r.header.deleted for r in held):
            raise ItemNotFoundError(f"no item {item.hex()}")
        self._write_item(item, {}, deleted=True)

    def trash(self) -> list[tuple[Record, ItemState]]:
        """Deleted items: each one's latest delete and the last state it had before it."""
        found = []
        for item, held in self.store.heads_of_kind(Kind.ITEM):
            if all(r.header.deleted for r in held):
                last = self._last_state(item)
                if last is not None:
                    found.append((max(held, key=lambda r: (r.header.time, r.id)), last))
        return sorted(found, key=lambda f: (-f[0].header.time, f[0].id))

    def _last_state(self, item: bytes) -> ItemState | None:
        """The latest version of an item that was not a delete."""
        live = [(r, s) for r, s in self.history(item) if s is not None]
        return max(live, key=lambda rs: (rs[0].header.time, rs[0].id))[1] if live else None

    def undelete(self, item: bytes) -> ItemState:
        """Bring a deleted item back as it last was: a new version that supersedes the delete."""
        if any(not r.header.deleted for r in self.store.heads(item)):
            raise UsageError(f"item {item.hex()} is not deleted")
        state = self._last_state(item)
        if state is None:
            raise ItemNotFoundError(f"item {item.hex()} has no version to bring back")
        payload = state.to_payload()
        self.author.write(item, Kind.ITEM,
                          lambda header, _held: seal_item_body(self._payload_key, header, payload))
        return state

    def merge_pending(self) -> int:
        """Write one dominating version for every item with concurrent versions.

        An item with a version that cannot be read is left as it is (``verify`` names it).
        """
        merged = 0
        for item in self.store.items_with_concurrent_versions(Kind.ITEM):
            if any(not r.header.deleted for r in self.store.heads(item)):
                try:
                    self._write_item(item, {})
                except IntegrityError:
                    continue
                merged += 1
        return merged

    def verify_all(self) -> int:
        """Check every record in the store as if never seen: author, signature (marks
        ignored) and, for accepted item versions, the authenticated payload.

        Returns how many records were checked; raises :class:`IntegrityError` naming the
        items of every record that failed (all of them are checked first).
        """
        full = AuthorCheck(self.store, self.verifier)  # no mark key: every signature is verified
        inactive = {r.id for r in self.store.inactive_records()}
        ids = list(self.store.record_ids())
        failed: list[str] = []
        group: list[Record] = []
        size = 0
        for rid in ids:
            try:
                record = self.store.get_record(rid)
            except IntegrityError as exc:
                failed.append(str(exc))
                continue
            if record is None:  # one purged meanwhile
                continue
            group.append(record)
            size += len(record.encoded)
            if len(group) >= VERIFY_CHUNK or size >= VERIFY_BYTES:
                self._verify_group(full, group, inactive, failed)
                group, size = [], 0
        self._verify_group(full, group, inactive, failed)
        if failed:
            more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
            raise IntegrityError(f"{len(failed)} of {len(ids)} records failed: "
                                 + "; ".join(failed[:3]) + more)
        return len(ids)

    def _verify_group(self, full: AuthorCheck, present: list[Record],
                      inactive: set[bytes], failed: list[str]) -> None:
        """One bounded group of :meth:`verify_all`; reasons of what fails go to ``failed``."""
        active = [r for r in present if r.id not in inactive]
        try:
            full.check_all(active)
        except IntegrityError:
            active = self._keep_good(full, active, failed)
        for r in present:
            if r.id in inactive:  # held but not accepted: its signature must still hold
                try:
                    full.check_signatures([r])
                except IntegrityError as exc:
                    failed.append(str(exc))
        for r in active:
            if r.header.kind == Kind.ITEM and not r.header.deleted:
                try:
                    self._state(r)
                except IntegrityError as exc:
                    failed.append(str(exc))

    @staticmethod
    def _keep_good(check: AuthorCheck, records: list[Record], failed: list[str]
                   ) -> list[Record]:
        """The records that pass ``check`` one by one; the others' reasons go to ``failed``."""
        good: list[Record] = []
        for r in records:
            try:
                check.check_all([r])
            except IntegrityError as exc:
                failed.append(str(exc))
                continue
            good.append(r)
        return good


def _check_type(type_: str) -> None:
    if type_ not in ITEM_TYPES:
        raise UsageError(f"unknown item type {type_!r} (choose from {', '.join(ITEM_TYPES)})")


