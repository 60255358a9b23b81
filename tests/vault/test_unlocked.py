"""The vault: concurrent versions merge by field, deletes never eat edits, keys stay locked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from wifisync.errors import (
    AlreadyInitialisedError,
    AmbiguousItemError,
    IntegrityError,
    ItemNotFoundError,
    NotInitialisedError,
    UsageError,
    WrongPasswordError,
)
from wifisync.model import crypto
from wifisync.model.clock import HybridClock, hlc_pack
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import VAULT_KEY_ITEM, Kind, Membership, Record, member_item_id
from wifisync.model.verifier import signature_holds
from wifisync.model.versions import dominates
from wifisync.store import MemoryStore, RecordStore, SqliteStore
from wifisync.vault.unlocked import META_VAULT_ID, Vault, read_wrapped_key, vault_id_of

PASSWORD = "correct horse battery staple"


def fast_kdf() -> crypto.KdfParams:
    return crypto.KdfParams.fresh(opslimit=1, memlimit=8192)


def sync(src: RecordStore, dst: RecordStore) -> int:
    """Copy every record ``dst`` lacks, as the sync core would: by origin, then seq."""
    copied = 0
    for origin, _n in sorted(src.seen().items()):
        for r in src.records_after(origin, 0, 1 << 30):
            if not dst.has_record(r.id):
                dst.append(r)
                copied += 1
    return copied


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@pytest.fixture(scope="module")
def identities() -> tuple[DeviceIdentity, DeviceIdentity, DeviceIdentity]:
    return DeviceIdentity.generate(), DeviceIdentity.generate(), DeviceIdentity.generate()


def open_vault(store: RecordStore, identity: DeviceIdentity, clock: Clock) -> Vault:
    v = Vault.unlock(store, identity, PASSWORD)
    v.author.now_ms = clock
    return v


@pytest.fixture
def pair(identities: tuple[DeviceIdentity, ...]) -> Iterator[tuple[Vault, Vault, Clock, Clock]]:
    """Two devices holding the same vault on separate stores, each with its own clock."""
    a_store, b_store = MemoryStore(), MemoryStore()
    a_clock, b_clock = Clock(1_000), Clock(1_000)
    a = Vault.create(a_store, identities[0], "a", PASSWORD, kdf=fast_kdf())
    a.author.clock = HybridClock()  # forget the real time create() used
    a.author.now_ms = a_clock
    for name, other in zip("bc", identities[1:], strict=True):
        a.write_member(Membership(other.cert_der, name))
    b_store.set_meta(META_VAULT_ID, vault_id_of(a_store))
    sync(a_store, b_store)
    b = open_vault(b_store, identities[1], b_clock)
    yield a, b, a_clock, b_clock


def exchange(a: Vault, b: Vault) -> None:
    sync(a.store, b.store)
    sync(b.store, a.store)


def shared_item(a: Vault, b: Vault, **fields: str) -> bytes:
    item = a.add("Mail", fields=fields or {"user": "ann", "password": "old"})
    exchange(a, b)
    return item


# --- creating and unlocking ------------------------------------------------------------


def test_create_writes_member_and_wrapped_key(identities: tuple[DeviceIdentity, ...]) -> None:
    store = MemoryStore()
    v = Vault.create(store, identities[0], "laptop", PASSWORD, kdf=fast_kdf())
    assert len(vault_id_of(store)) == 16 and v.vault_id == vault_id_of(store)
    assert [item for item, _ in store.heads_of_kind(Kind.VAULT_KEY)] == [VAULT_KEY_ITEM]
    assert len(list(store.heads_of_kind(Kind.MEMBER))) == 1
    [(_item, [member])] = store.heads_of_kind(Kind.MEMBER)
    assert Membership.decode(member.body).device_id == identities[0].device_id
    assert v.items() == []
    with pytest.raises(AlreadyInitialisedError):
        Vault.create(store, identities[0], "laptop", PASSWORD, kdf=fast_kdf())


def test_an_empty_store_is_not_initialised(identities: tuple[DeviceIdentity, ...]) -> None:
    with pytest.raises(NotInitialisedError, match="wifisync init"):
        vault_id_of(MemoryStore())
    with pytest.raises(NotInitialisedError):
        Vault.unlock(MemoryStore(), identities[0], PASSWORD)


def test_unlock_with_wrong_password_changes_nothing(
        identities: tuple[DeviceIdentity, ...]) -> None:
    store = MemoryStore()
    v = Vault.create(store, identities[0], "laptop", PASSWORD, kdf=fast_kdf())
    v.add("Bank")
    count, fp = store.count_records(), store.fingerprint()
    with pytest.raises(WrongPasswordError):
        Vault.unlock(store, identities[0], PASSWORD + "!")
    assert (store.count_records(), store.fingerprint()) == (count, fp)
    assert Vault.unlock(store, identities[0], PASSWORD).vault_key == v.vault_key


def test_default_kdf_is_argon2id_64_mib(identities: tuple[DeviceIdentity, ...]) -> None:
    store = MemoryStore()
    Vault.create(store, identities[0], "laptop", PASSWORD)
    kdf = read_wrapped_key(store).kdf
    assert kdf.memlimit >= 64 * 1024 * 1024 and kdf.opslimit >= 3


def test_change_password(pair: tuple[Vault, Vault, Clock, Clock]) -> None:
    a, b, a_clock, _ = pair
    item = a.add("Bank", fields={"pin": "1234"})
    a_clock.ms += 10
    a.change_password("new password")
    with pytest.raises(WrongPasswordError):
        Vault.unlock(a.store, a.identity, PASSWORD)
    again = Vault.unlock(a.store, a.identity, "new password")
    assert again.get(item).state.values == {"pin": "1234"}
    assert len(a.store.heads(VAULT_KEY_ITEM)) == 1
    old_kdf = read_wrapped_key(a.store).kdf
    assert (old_kdf.opslimit, old_kdf.memlimit) == (1, 8192)
    # the new wrapped key syncs like any record
    exchange(a, b)
    assert Vault.unlock(b.store, b.identity, "new password").get(item).state.title == "Bank"
    with pytest.raises(WrongPasswordError):
        Vault.unlock(b.store, b.identity, PASSWORD)


# --- single-device reads and writes ----------------------------------------------------


def test_add_get_edit_delete_history(pair: tuple[Vault, Vault, Clock, Clock]) -> None:
    a, _, clock, _ = pair
    item = a.add("Bank", type_="card", fields={"number": "4111", "cvc": "123"},
                 tags=["money", "money", "cards"])
    view = a.get(item)
    assert view.state.title == "Bank" and view.state.type == "card"
    assert view.state.tags == ["cards", "money"] and view.conflicts == 0
    assert view.state.values == {"cvc": "123", "number": "4111"}
    clock.ms += 5
    a.edit(item, title="My bank", fields={"cvc": "999"}, unset=["number"], tags=["x"],
           type_="login")
    view = a.get(item)
    assert (view.state.title, view.state.type, view.state.tags, view.state.values) == (
        "My bank", "login", ["x"], {"cvc": "999"})
    assert view.state.history["field:cvc"][0][0] == "123"
    a.delete(item)
    with pytest.raises(ItemNotFoundError):
        a.get(item)
    assert a.items() == []
    history = a.history(item)
    assert [s is None for _r, s in history] == [False, False, True]
    assert history[0][1] is not None and history[0][1].title == "Bank"
    with pytest.raises(ItemNotFoundError):
        a.delete(item)
    with pytest.raises(ItemNotFoundError):
        a.history(b"\x00" * 16)
    with pytest.raises(ItemNotFoundError):
        a.history(VAULT_KEY_ITEM)


def test_bad_type_and_unknown_unset_are_usage_errors(
        pair: tuple[Vault, Vault, Clock, Clock]) -> None:
    a = pair[0]
    with pytest.raises(UsageError):
        a.add("x", type_="password")
    item = a.add("x")
    with pytest.raises(UsageError):
        a.edit(item, unset=["nothing"])
    with pytest.raises(UsageError):
        a.edit(item, type_="bogus")


def test_items_are_sorted_by_title(pair: tuple[Vault, Vault, Clock, Clock]) -> None:
    a = pair[0]
    for title in ("beta", "Alpha", "gamma"):
        a.add(title)
    assert [v.state.title for v in a.items()] == ["Alpha", "beta", "gamma"]


def test_resolve_by_id_prefix_and_title(pair: tuple[Vault, Vault, Clock, Clock]) -> None:
    a = pair[0]
    one = a.add("Mail")
    two = a.add("Mail")
    three = a.add("Bank")
    assert a.resolve(one.hex()) == one
    assert a.resolve(one.hex().upper()) == one
    assert a.resolve("Bank") == three
    assert a.resolve(three.hex()[:8]) == three
    with pytest.raises(AmbiguousItemError):
        a.resolve("Mail")
    with pytest.raises(ItemNotFoundError):
        a.resolve("Nothing")
    with pytest.raises(ItemNotFoundError):
        a.resolve(three.hex()[:3])  # prefixes shorter than 4 are not IDs
    assert two != one


# --- concurrent versions ---------------------------------------------------------------


def test_edits_to_different_fields_both_survive(pair: tuple[Vault, Vault, Clock, Clock]
                                                ) -> None:
    a, b, a_clock, b_clock = pair
    item = shared_item(a, b)
    a_clock.ms, b_clock.ms = 2_000, 3_000
    a.edit(item, fields={"user": "anne"})
    b.edit(item, fields={"password": "new"})
    exchange(a, b)
    for v in (a, b):
        view = v.get(item)
        assert view.conflicts == 1
        assert view.state.values == {"user": "anne", "password": "new"}
    assert a.merge_pending() == 1
    assert a.merge_pending() == 0
    exchange(a, b)
    for v in (a, b):
        assert v.get(item).conflicts == 0
        assert v.get(item).state.values == {"user": "anne", "password": "new"}


def test_same_field_later_clock_wins_loser_in_history(
        pair: tuple[Vault, Vault, Clock, Clock]) -> None:
    a, b, a_clock, b_clock = pair
    item = shared_item(a, b)
    a_clock.ms, b_clock.ms = 5_000, 4_000
    a.edit(item, fields={"password": "from-a"})  # later
    b.edit(item, fields={"password": "from-b"})
    exchange(a, b)
    for v in (a, b):
        state = v.get(item).state
        assert state.values["password"] == "from-a"
        assert "from-b" in [value for value, _t in state.history["field:password"]]
        assert "old" in [value for value, _t in state.history["field:password"]]


def test_equal_clocks_resolve_the_same_way_on_both_devices(
        pair: tuple[Vault, Vault, Clock, Clock]) -> None:
    a, b, a_clock, b_clock = pair
    item = shared_item(a, b)
    a_clock.ms = b_clock.ms = 7_000
    a.edit(item, fields={"password": "from-a"})
    b.edit(item, fields={"password": "from-b"})
    exchange(a, b)
    assert a.get(item).state == b.get(item).state
    a.merge_pending()
    b.merge_pending()
    exchange(a, b)
    a.merge_pending()
    exchange(a, b)
    assert a.get(item).state.values == b.get(item).state.values
    assert a.get(item).conflicts == b.get(item).conflicts == 0


def test_causal_edit_wins_even_with_a_slow_wall_clock(
        pair: tuple[Vault, Vault, Clock, Clock]) -> None:
    """B's clock is behind, but B saw A's edit before editing: B's value is the later one."""
    a, b, a_clock, b_clock = pair
    a_clock.ms = 90_000
    item = shared_item(a, b)
    b_clock.ms = 1_000
    b.edit(item, fields={"password": "after"})
    exchange(a, b)
    assert a.get(item).state.values["password"] == "after"
    assert a.get(item).state.fields["password"][1] > hlc_pack(90_000, 0)


def test_removed_field_stays_removed(pair: tuple[Vault, Vault, Clock, Clock]) -> None:
    a, b, a_clock, b_clock = pair
    item = shared_item(a, b, user="ann", pin="1234")
    a_clock.ms, b_clock.ms = 2_000, 3_000
    a.edit(item, unset=["pin"])
    b.edit(item, fields={"user": "bob"})
    exchange(a, b)
    for v in (a, b):
        assert v.get(item).state.values == {"user": "bob"}
    b.merge_pending()
    exchange(a, b)
    assert a.get(item).state.values == {"user": "bob"}


def test_delete_concurrent_with_edit_keeps_the_edit(
        pair: tuple[Vault, Vault, Clock, Clock]) -> None:
    a, b, a_clock, b_clock = pair
    item = shared_item(a, b)
    a_clock.ms, b_clock.ms = 9_000, 2_000  # the delete is even the later one
    a.delete(item)
    b.edit(item, fields={"password": "kept"})
    exchange(a, b)
    for v in (a, b):
        view = v.get(item)
        assert view.state.values["password"] == "kept" and view.conflicts == 1
        assert [x.id for x in v.items()] == [item]
    assert a.merge_pending() == 1
    exchange(a, b)
    assert len(b.store.heads(item)) == 1
    assert not b.store.heads(item)[0].header.deleted
    assert b.get(item).state.values["password"] == "kept"


def test_delete_that_saw_the_edit_deletes(pair: tuple[Vault, Vault, Clock, Clock]) -> None:
    a, b, _, _ = pair
    item = shared_item(a, b)
    a.edit(item, fields={"password": "edited"})
    exchange(a, b)
    b.delete(item)
    exchange(a, b)
    for v in (a, b):
        with pytest.raises(ItemNotFoundError):
            v.get(item)
        assert v.items() == []
        assert v.merge_pending() == 0


def test_concurrent_deletes_stay_deleted(pair: tuple[Vault, Vault, Clock, Clock]) -> None:
    a, b, _, _ = pair
    item = shared_item(a, b)
    a.delete(item)
    b.delete(item)
    exchange(a, b)
    assert len(a.store.heads(item)) == 2
    with pytest.raises(ItemNotFoundError):
        a.get(item)
    assert a.merge_pending() == 0


def test_conflicts_counts_versions_beyond_the_first(
        pair: tuple[Vault, Vault, Clock, Clock], identities: tuple[DeviceIdentity, ...]
) -> None:
    a, b, _, _ = pair
    c_store = MemoryStore()
    c_store.set_meta(META_VAULT_ID, a.vault_id)
    item = shared_item(a, b)
    sync(a.store, c_store)
    c = open_vault(c_store, identities[2], Clock(1_000))
    a.edit(item, fields={"f": "a"})
    b.edit(item, fields={"g": "b"})
    c.edit(item, fields={"h": "c"})
    exchange(a, b)
    exchange(a, c)
    exchange(a, b)
    for v in (a, b, c):
        view = v.get(item)
        assert view.conflicts == 2
        assert view.state.values == {"user": "ann", "password": "old", "f": "a", "g": "b",
                                     "h": "c"}
    held = a.store.heads(item)
    assert c.merge_pending() == 1
    [merged] = c.store.heads(item)
    assert all(dominates(merged.header.versions, r.header.versions) for r in held)
    assert c.get(item).conflicts == 0


def test_next_edit_also_settles_a_conflict(pair: tuple[Vault, Vault, Clock, Clock]) -> None:
    a, b, _, _ = pair
    item = shared_item(a, b)
    a.edit(item, fields={"user": "anne"})
    b.edit(item, fields={"password": "new"})
    exchange(a, b)
    a.edit(item, title="Mailbox")
    view = a.get(item)
    assert view.conflicts == 0
    assert view.state.values == {"user": "anne", "password": "new"}
    assert view.state.title == "Mailbox"


# --- on disk ---------------------------------------------------------------------------


def test_nothing_readable_reaches_the_disk(tmp_path: Path,
                                          identities: tuple[DeviceIdentity, ...]) -> None:
    path = tmp_path / "vault.db"
    store = SqliteStore(path)
    v = Vault.create(store, identities[0], "laptop", "Sup3rSecretMaster", kdf=fast_kdf())
    item = v.add("TopSecretTitle", fields={"password": "HunterTwoValue"}, tags=["PrivateTag"])
    v.edit(item, fields={"password": "SecondSecretValue"})
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    store.close()
    raw += path.read_bytes()
    for secret in ("Sup3rSecretMaster", "TopSecretTitle", "HunterTwoValue", "PrivateTag",
                   "SecondSecretValue", "password"):
        for encoding in ("utf-8", "utf-16-le"):
            assert secret.encode(encoding) not in raw, secret
    assert v.vault_key not in raw


def test_tampered_record_in_the_store_is_reported(tmp_path: Path,
                                                 identities: tuple[DeviceIdentity, ...]
                                                 ) -> None:
    import sqlite3

    path = tmp_path / "vault.db"
    store = SqliteStore(path)
    v = Vault.create(store, identities[0], "laptop", PASSWORD, kdf=fast_kdf())
    item = v.add("Bank", fields={"pin": "1234"})
    [record] = store.heads(item)
    db = sqlite3.connect(path, isolation_level=None)
    altered = bytearray(record.encoded)
    altered[len(altered) // 2] ^= 0x01
    db.execute("UPDATE records SET data = ? WHERE id = ?", (bytes(altered), record.id))
    db.close()
    with pytest.raises(IntegrityError):
        v.get(item)
    assert v.items() == [] and v.unreadable == [item]
    store.close()


def test_tampered_ciphertext_with_a_consistent_id_is_refused(
        pair: tuple[Vault, Vault, Clock, Clock]) -> None:
    """Even if the stored hash were recomputed, the AEAD still refuses a changed body."""
    from wifisync.model.records import Record

    a = pair[0]
    item = a.add("Bank", fields={"pin": "1234"})
    [record] = a.store.heads(item)
    body = bytearray(record.body)
    body[-1] ^= 0x01
    forged = Record.create(record.header, bytes(body), record.signature)
    with pytest.raises(IntegrityError):
        a._state(forged)
    assert not signature_holds(forged, a.identity.public_key)
    assert a.verify_all() == a.store.count_records()  # the stored record is intact


def test_a_bad_signature_is_found_among_many_items(tmp_path: Path,
                                                  identities: tuple[DeviceIdentity, ...]
                                                  ) -> None:
    """Long lists are checked on several threads; a forged record is still caught."""
    import hashlib
    import sqlite3

    path = tmp_path / "vault.db"
    store = SqliteStore(path)
    v = Vault.create(store, identities[0], "laptop", PASSWORD, kdf=fast_kdf())
    with store.transaction():
        ids = [v.add(f"item {n}") for n in range(700)]
    assert len(v.items()) == 700
    [record] = store.heads(ids[555])
    altered = record.encoded[:-1] + bytes([record.encoded[-1] ^ 0x01])  # last signature byte
    new_id = hashlib.sha256(altered).digest()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE records SET data = ?, id = ? WHERE id = ?", (altered, new_id, record.id))
    db.close()
    fresh = Vault(store, identities[0], v.vault_key)
    assert len(fresh.items()) == 699 and fresh.unreadable == [ids[555]]
    with pytest.raises(IntegrityError, match="bad signature"):
        fresh.get(ids[555])
    store.close()


def test_a_self_appointed_member_cannot_hide_items(pair: tuple[Vault, Vault, Clock, Clock]
                                                   ) -> None:
    """Someone who can write the store, but holds no member's key, adds himself and deletes."""
    from wifisync.model.membership import named_devices

    a = pair[0]
    item = a.add("Bank", fields={"pin": "1234"})
    intruder = DeviceIdentity.generate()
    forge_write(a.store, intruder, a.vault_id, member_item_id(intruder.device_id), Kind.MEMBER,
                Membership(intruder.cert_der, "intruder").encode())
    forge_write(a.store, intruder, a.vault_id, item, Kind.ITEM, b"", deleted=True)
    assert intruder.device_id not in named_devices(a.store)
    with pytest.raises(IntegrityError, match="not a member"):
        Vault.unlock(a.store, a.identity, PASSWORD)
    with pytest.raises(IntegrityError, match="not a member"):
        Vault(a.store, a.identity, a.vault_key).get(item)


def test_a_forged_sponsor_signature_does_not_chain_a_member(
        pair: tuple[Vault, Vault, Clock, Clock]) -> None:
    """A MEMBER record that claims a member as author but is not signed by it admits nobody,
    even once the intruder's own, validly signed version has replaced it."""
    from wifisync.model.membership import named_devices
    from wifisync.model.records import Record, RecordHeader

    a = pair[0]
    intruder = DeviceIdentity.generate()
    target = member_item_id(intruder.device_id)
    body = Membership(intruder.cert_der, "intruder").encode()
    header = RecordHeader(vault=a.vault_id, item=target, kind=Kind.MEMBER,
                          author=a.identity.device_id, seq=a.store.next_seq(a.identity.device_id),
                          versions={a.identity.device_id: 99}, time=1, deleted=False)
    a.store.append(Record.create(header, body, intruder.sign(b"not the member's signature")))
    forge_write(a.store, intruder, a.vault_id, target, Kind.MEMBER, body)
    assert [r.header.author for r in a.store.heads(target)] == [intruder.device_id]
    assert intruder.device_id not in named_devices(a.store)


def test_membership_chains_from_the_vault_creator(identities: tuple[DeviceIdentity, ...]
                                                  ) -> None:
    """The vault ID names its creator; a device is a member through whoever added it, even
    after the device that added it was revoked by the one it added (the revocation keeps
    what its author's own membership depends on)."""
    from wifisync.model.membership import is_vault_root, named_devices

    creator, first, second = identities
    store = MemoryStore()
    v = Vault.create(store, creator, "creator", PASSWORD, kdf=fast_kdf())
    assert is_vault_root(v.vault_id, creator.device_id)
    assert not is_vault_root(v.vault_id, first.device_id)
    v.write_member(Membership(first.cert_der, "first"))
    as_first = Vault(store, first, v.vault_key)
    as_first.write_member(Membership(second.cert_der, "second"))
    as_second = Vault(store, second, v.vault_key)
    held = store.origins()
    as_second.write_member(Membership(first.cert_der, "first", revoked=True, held=held))
    known = named_devices(store)
    assert set(known) == {creator.device_id, first.device_id, second.device_id}
    assert known[first.device_id].cut == held[first.device_id]
    assert known[second.device_id].current


def forge_write(store: RecordStore, who: DeviceIdentity, vault_id: bytes, item: bytes,
                kind: Kind, body: bytes, deleted: bool = False) -> None:
    """Sign and store a record as ``who``, past every check (someone who writes the store)."""
    from wifisync.model.records import RecordHeader, sign_record

    seq = store.next_seq(who.device_id)
    versions = {k: v for r in store.heads(item) for k, v in r.header.versions.items()}
    versions[who.device_id] = seq
    header = RecordHeader(vault_id, item, kind, who.device_id, seq, versions, 1, deleted)
    store.append(sign_record(who, header, body))


# --- reading a large vault -------------------------------------------------------------


def with_ids(monkeypatch: pytest.MonkeyPatch, *hex_ids: str) -> None:
    """Make the next items added get these IDs (in order) instead of random ones."""
    import uuid

    chosen = iter(uuid.UUID(h) for h in hex_ids)
    monkeypatch.setattr(uuid, "uuid4", lambda: next(chosen))


def test_an_id_prefix_shared_by_two_items_names_both(pair: tuple[Vault, Vault, Clock, Clock],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    a = pair[0]
    with_ids(monkeypatch, "abcd1" + "0" * 27, "abcd2" + "0" * 27, "abce" + "0" * 28)
    one, two, three = a.add("Mail"), a.add("Bank"), a.add("Shop")
    with pytest.raises(AmbiguousItemError) as err:
        a.resolve("ABCD")
    assert "2 items" in str(err.value)
    assert f"{one.hex()[:12]} 'Mail'" in str(err.value) and f"{two.hex()[:12]} 'Bank'" in str(
        err.value) and "Shop" not in str(err.value)
    assert (a.resolve("abcd1"), a.resolve("abcd2"), a.resolve("abce")) == (one, two, three)
    a.delete(two)
    assert a.resolve("abcd") == one  # a deleted item is no candidate


def test_a_title_that_is_also_an_id_prefix_stays_ambiguous(
        pair: tuple[Vault, Vault, Clock, Clock], monkeypatch: pytest.MonkeyPatch) -> None:
    a = pair[0]
    with_ids(monkeypatch, "cafe" + "0" * 28, "1234" + "0" * 28)
    a.add("Bank")
    a.add("cafe")
    with pytest.raises(AmbiguousItemError, match="2 items"):
        a.resolve("cafe")


def test_titles_match_exactly_first_then_in_any_case(pair: tuple[Vault, Vault, Clock, Clock]
                                                     ) -> None:
    a = pair[0]
    upper, lower = a.add("Mail"), a.add("mail")
    other = a.add("Straße")
    assert (a.resolve("Mail"), a.resolve("mail")) == (upper, lower)
    with pytest.raises(AmbiguousItemError):
        a.resolve("MAIL")
    assert a.resolve("STRASSE") == other  # casefold, as lookup.resolve compares
    a.edit(other, title="Street")
    assert a.resolve("street") == other
    with pytest.raises(ItemNotFoundError):
        a.resolve("Straße")  # the old title names nothing


def test_a_title_from_a_concurrent_version_names_the_item(
        pair: tuple[Vault, Vault, Clock, Clock]) -> None:
    a, b, a_clock, b_clock = pair
    item = shared_item(a, b)
    a_clock.ms, b_clock.ms = 2_000, 3_000
    a.edit(item, title="Post")
    b.edit(item, title="Letters")  # later: its title wins the merge
    exchange(a, b)
    assert a.get(item).conflicts == 1 and a.get(item).state.title == "Letters"
    assert a.resolve("letters") == item
    with pytest.raises(ItemNotFoundError):
        a.resolve("Post")  # a losing version's title is not the item's title


def test_an_item_that_fails_its_signature_check_is_not_named(
        tmp_path: Path, identities: tuple[DeviceIdentity, ...]) -> None:
    import hashlib
    import sqlite3

    path = tmp_path / "vault.db"
    store = SqliteStore(path)
    v = Vault.create(store, identities[0], "laptop", PASSWORD, kdf=fast_kdf())
    forged_item, good = v.add("Bank"), v.add("Bank")
    [record] = store.heads(forged_item)
    altered = record.encoded[:-1] + bytes([record.encoded[-1] ^ 0x01])  # last signature byte
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE records SET data = ?, id = ? WHERE id = ?",
               (altered, hashlib.sha256(altered).digest(), record.id))
    db.close()
    fresh = Vault(store, identities[0], v.vault_key)
    assert fresh.resolve("Bank") == good  # as `list` shows only the readable one
    store.close()


def test_items_are_read_batch_by_batch(tmp_path: Path, identities: tuple[DeviceIdentity, ...]
                                       ) -> None:
    """`list` holds one batch of records at a time, whatever the vault's size."""
    pulled: list[int] = []

    class Counting(SqliteStore):
        def stream_heads(self, kind: Kind, batch: int = 1000
                         ) -> Iterator[list[tuple[bytes, list[Record] | None]]]:
            for group in super().stream_heads(kind, batch=10):
                pulled.append(len(group))
                yield group

    store = Counting(tmp_path / "vault.db")
    v = Vault.create(store, identities[0], "laptop", PASSWORD, kdf=fast_kdf())
    with store.transaction():
        for n in range(35):
            v.add(f"item {n}")
    views = v.iter_items()
    next(views)
    assert pulled == [10]
    assert len(list(views)) == 34 and pulled == [10, 10, 10, 5]
    assert [x.state.title for x in v.items()][:3] == ["item 0", "item 1", "item 10"]
    store.close()


def test_title_tags_follow_edits_and_synced_versions_and_say_nothing_alone(
        tmp_path: Path, identities: tuple[DeviceIdentity, ...]) -> None:
    import sqlite3

    path = tmp_path / "vault.db"
    store = SqliteStore(path)
    v = Vault.create(store, identities[0], "laptop", PASSWORD, kdf=fast_kdf())
    mail, bank, other_bank = v.add("Mail"), v.add("Bank"), v.add("Bank")
    db = sqlite3.connect(path, isolation_level=None)

    def tags() -> dict[bytes, bytes]:
        return {bytes(rid): bytes(tag) for rid, tag in db.execute("SELECT id, tag FROM title_tags")}

    assert tags() == {}
    assert v.resolve("mail") == mail  # the first lookup tags every held version
    held = {r.id for item in (mail, bank, other_bank) for r in store.heads(item)}
    assert set(tags()) == held
    bank_tags = {tags()[r.id] for item in (bank, other_bank) for r in store.heads(item)}
    assert len(bank_tags) == 2  # equal titles, unrelated tags
    v.edit(mail, title="Post")  # a new version, untagged until the next lookup
    with pytest.raises(ItemNotFoundError):
        v.resolve("Mail")
    assert v.resolve("post") == mail
    assert set(tags()) >= {r.id for r in store.heads(mail)}
    db.execute("DELETE FROM title_tags")  # lost tags are made again, as after a restore
    assert v.resolve("POST") == mail
    db.close()
    store.close()
