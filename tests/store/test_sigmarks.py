"""Signature marks: a checked record is not verified again, and nobody else can mark one."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.sync.helpers import Device, create_device, identity, join_device
from tests.sync.test_session import add_items
from wifisync.errors import IntegrityError
from wifisync.model import crypto
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Kind, Record, RecordHeader, sign_record
from wifisync.model.verifier import Claim, InlineVerifier, Verdicts, Verifier
from wifisync.store import SqliteStore, sigmarks
from wifisync.sync import Replica
from wifisync.vault.unlocked import Vault
from wifisync.wallclock import wall_ms

PASSWORD = "pw"


@pytest.fixture(scope="module")
def me() -> DeviceIdentity:
    return DeviceIdentity.generate()


@pytest.fixture
def vault(tmp_path: Path, me: DeviceIdentity) -> Iterator[Vault]:
    store = SqliteStore(tmp_path / "vault.db")
    v = Vault.create(store, me, "laptop", PASSWORD, crypto.KdfParams.fresh(1, 8192))
    for n in range(3):
        v.add(f"item {n}")
    yield v
    store.close()


def reopened(v: Vault) -> Vault:
    """A new handle on the same store, as the next CLI command gets."""
    return Vault(v.store, v.identity, v.vault_key)


def forge_signature(v: Vault, title: str) -> Record:
    """Replace the newest record of a new item by a copy with a garbage signature.

    Header and ciphertext stay genuine, so only the signature check can refuse it.
    """
    good = v.store.heads(v.add(title))[0]
    forged = Record.create(good.header, good.body, bytes(64))
    db = sqlite3.connect(v.store.path)  # type: ignore[attr-defined]
    with db:
        db.execute("UPDATE records SET id = ?, data = ? WHERE id = ?",
                   (forged.id, forged.encoded, good.id))
    db.close()
    return forged


def drop_marks(v: Vault) -> None:
    """Forget every mark, as for records that arrived from another device."""
    db = sqlite3.connect(v.store.path)  # type: ignore[attr-defined]
    with db:
        db.execute("DELETE FROM signature_marks")
    db.close()


def test_this_devices_own_writes_are_marked_as_they_are_signed(vault: Vault,
                                                                me: DeviceIdentity) -> None:
    record = vault.store.heads(vault.add("fresh"))[0]
    marks = vault.store.signature_marks([record.id])
    assert sigmarks.is_marked(sigmarks.mark_key(me), record.id, marks.get(record.id))


def test_checked_records_get_this_devices_marks(vault: Vault, me: DeviceIdentity) -> None:
    drop_marks(vault)
    assert [v.state.title for v in vault.items()] == ["item 0", "item 1", "item 2"]
    held = [r for _i, rs in vault.store.heads_of_kind(Kind.ITEM) for r in rs]
    marks = vault.store.signature_marks([r.id for r in held])
    key = sigmarks.mark_key(me)
    assert len(marks) == 3 and all(sigmarks.is_marked(key, r.id, marks[r.id]) for r in held)
    assert [v.state.title for v in reopened(vault).items()] == ["item 0", "item 1", "item 2"]


def refused_on_read(v: Vault, item: bytes, match: str) -> None:
    """The item is left out of the list (counted as unreadable) and cannot be shown."""
    fresh = reopened(v)
    assert item not in [view.id for view in fresh.items()]
    assert fresh.unreadable == [item]
    with pytest.raises(IntegrityError, match=match):
        reopened(v).get(item)


def test_a_forged_signature_is_caught_and_never_marked(vault: Vault) -> None:
    forged = forge_signature(vault, "forged")
    refused_on_read(vault, forged.header.item, "bad signature")
    assert vault.store.signature_marks([forged.id]) == {}
    refused_on_read(vault, forged.header.item, "bad signature")


def test_a_valid_mark_is_what_stands_in_for_the_check(vault: Vault, me: DeviceIdentity) -> None:
    """Only this device's key makes a mark that skips verification (hence: keep it secret)."""
    forged = forge_signature(vault, "forged")
    vault.store.add_signature_marks({forged.id: sigmarks.mark(sigmarks.mark_key(me), forged.id)})
    assert "forged" in [v.state.title for v in reopened(vault).items()]


def test_verify_all_checks_every_signature_whatever_the_marks(vault: Vault,
                                                              me: DeviceIdentity) -> None:
    """`wifisync verify` is for a user who suspects even this device's key."""
    forged = forge_signature(vault, "forged")
    vault.store.add_signature_marks({forged.id: sigmarks.mark(sigmarks.mark_key(me), forged.id)})
    assert "forged" in [v.state.title for v in reopened(vault).items()]
    with pytest.raises(IntegrityError, match="bad signature"):
        reopened(vault).verify_all()


def test_marks_an_attacker_can_make_are_refused(vault: Vault) -> None:
    vault.items()  # the genuine records get their marks
    genuine = next(r for _i, rs in vault.store.heads_of_kind(Kind.ITEM) for r in rs)
    [genuine_mark] = vault.store.signature_marks([genuine.id]).values()
    forged = forge_signature(vault, "forged")
    attempts = [
        sigmarks.mark(sigmarks.mark_key(DeviceIdentity.generate()), forged.id),  # other key
        genuine_mark,  # copied from a record that was checked
        bytes(sigmarks.MARK_BYTES),
    ]
    for attempt in attempts:
        vault.store.add_signature_marks({forged.id: attempt})
        refused_on_read(vault, forged.header.item, "bad signature")


def test_an_altered_record_keeps_no_mark_even_if_the_mark_row_follows_it(
        vault: Vault) -> None:
    """Flip a ciphertext byte, rehash the ID, and move the old mark to the new ID."""
    vault.items()  # everything marked
    assert isinstance(vault.store, SqliteStore)
    path = vault.store.path
    db = sqlite3.connect(path, isolation_level=None)
    old_id, item, data = db.execute(
        "SELECT id, item, data FROM records WHERE kind = 1 ORDER BY n DESC LIMIT 1").fetchone()
    altered = data[:-80] + bytes([data[-80] ^ 1]) + data[-79:]  # inside the ciphertext
    new_id = crypto.sha256(altered)
    db.execute("UPDATE records SET data = ?, id = ? WHERE id = ?", (altered, new_id, old_id))
    assert db.execute("UPDATE signature_marks SET id = ? WHERE id = ?",
                      (new_id, old_id)).rowcount == 1
    db.close()
    refused_on_read(vault, bytes(item), "bad signature")


def test_a_marked_record_of_a_non_member_is_still_refused(vault: Vault,
                                                          me: DeviceIdentity) -> None:
    stranger = DeviceIdentity.generate()
    header = RecordHeader(vault.vault_id, b"s" * 16, Kind.ITEM, stranger.device_id, 1,
                          {stranger.device_id: 1}, 1)
    record = sign_record(stranger, header, b"ciphertext")
    vault.store.append(record)
    vault.store.add_signature_marks({record.id: sigmarks.mark(sigmarks.mark_key(me),
                                                              record.id)})
    refused_on_read(vault, record.header.item, "not a member")


# --- set marks: a batch the daemon accepted is marked at once ---------------------------


class Counting:
    """A verifier that counts the signatures it is asked to check."""

    def __init__(self) -> None:
        self.checked = 0

    def submit(self, claims: Sequence[Claim]) -> Verdicts:
        self.checked += len(claims)
        return InlineVerifier().submit(claims)


@dataclass
class Synced:
    """A device whose daemon accepted a batch of another member's records by sync."""

    me: Device
    batch: list[Record]  # the item records, in the store's order

    def vault(self, verifier: Verifier | None = None) -> Vault:
        return Vault(self.me.store, self.me.identity, self.me.vault_key, verifier)

    def rewrite(self, old: Record, new: Record) -> None:
        """Put ``new`` in ``old``'s store row (ID and bytes), as someone editing the file."""
        db = sqlite3.connect(self.me.store.path)  # type: ignore[attr-defined]
        with db:
            assert db.execute("UPDATE records SET id = ?, data = ? WHERE id = ?",
                              (new.id, new.encoded, old.id)).rowcount == 1
        db.close()

    def set_rows(self, sql: str, *args: object) -> int:
        db = sqlite3.connect(self.me.store.path)  # type: ignore[attr-defined]
        with db:
            changed = db.execute(sql, args).rowcount
        db.close()
        return changed


@pytest.fixture
def synced(tmp_path: Path) -> Iterator[Synced]:
    other = create_device("other", identity(0))
    me = join_device(other, "me", identity(1), lambda: SqliteStore(tmp_path / "me.db"))
    add_items(other, 6)
    records = [r for rid in sorted(other.record_ids())
               if (r := other.store.get_record(rid)) is not None]
    replica = Replica(me.store, me.replica.vault_id, me.id, verifier=InlineVerifier(),
                      now_ms=wall_ms, on_stored=functools.partial(
                          sigmarks.mark_accepted, me.store, sigmarks.mark_key(me.identity)))
    result = replica.apply(records)
    assert len(result.applied) == 6 and not result.refused
    yield Synced(me, [r for r in result.applied if r.header.kind == Kind.ITEM])
    me.store.close()


def test_the_first_read_after_a_sync_checks_no_signature_again(synced: Synced) -> None:
    counting = Counting()
    assert len(synced.vault(counting).items()) == 6
    assert counting.checked == 0
    assert synced.me.store.signature_marks([r.id for r in synced.batch]) == {}  # one set mark


def set_refused_on_read(synced: Synced, forged: Record, match: str = "bad signature") -> None:
    """The forged item is left out (and cannot be shown); the batch's others still read."""
    fresh = synced.vault()
    assert len(fresh.items()) == 5
    assert fresh.unreadable == [forged.header.item]
    with pytest.raises(IntegrityError, match=match):
        synced.vault().get(forged.header.item)


def test_a_record_swapped_inside_a_marked_batch_voids_the_mark(synced: Synced) -> None:
    victim = synced.batch[2]
    forged = Record.create(victim.header, victim.body, bytes(64))
    synced.rewrite(victim, forged)
    counting = Counting()
    assert len(synced.vault(counting).items()) == 5
    assert counting.checked >= 6  # the mark stood for none of the batch: all verified
    set_refused_on_read(synced, forged)


def test_set_marks_an_attacker_can_make_are_refused(synced: Synced) -> None:
    victim = synced.batch[0]
    forged = Record.create(victim.header, victim.body, bytes(64))
    synced.rewrite(victim, forged)
    ids = [forged.id if r is victim else r.id for r in synced.batch]
    [(_ids, genuine)] = synced.me.store.signature_sets(ids)
    key = sigmarks.mark_key(synced.me.identity)
    attempts = [
        sigmarks.set_mark(sigmarks.mark_key(DeviceIdentity.generate()), ids),  # other key
        genuine,  # this device's own mark over the batch as it was
        sigmarks.mark(key, b"".join(sorted(ids))),  # a record mark over the same bytes
        bytes(sigmarks.MARK_BYTES),
    ]
    for attempt in attempts:
        assert synced.set_rows("UPDATE signature_sets SET mark = ?", attempt) == 1
        set_refused_on_read(synced, forged)


def test_a_forged_record_brought_into_a_marked_run_is_refused(synced: Synced) -> None:
    """Widen the run by one row to take in a forged record: the mark is void."""
    item = synced.vault().add("mine")  # this device's own write: the row after the batch
    mine = synced.me.store.heads(item)[0]
    forged = Record.create(mine.header, mine.body, bytes(64))
    synced.rewrite(mine, forged)
    synced.set_rows("DELETE FROM signature_marks")
    assert synced.set_rows("UPDATE signature_sets SET hi = hi + 1") == 1
    fresh = synced.vault()
    fresh.items()
    assert item in fresh.unreadable


def test_verify_all_checks_every_signature_whatever_the_set_marks(synced: Synced) -> None:
    victim = synced.batch[1]
    forged = Record.create(victim.header, victim.body, bytes(64))
    synced.rewrite(victim, forged)
    ids = [forged.id if r is victim else r.id for r in synced.batch]
    key = sigmarks.mark_key(synced.me.identity)
    synced.set_rows("UPDATE signature_sets SET mark = ?", sigmarks.set_mark(key, ids))
    assert len(synced.vault().items()) == 6  # only this device's key makes such a mark
    with pytest.raises(IntegrityError, match="bad signature"):
        synced.vault().verify_all()


def test_only_a_run_of_rows_stored_together_gets_a_set_mark(synced: Synced) -> None:
    store = synced.me.store
    ids = [r.id for r in synced.batch]
    key = sigmarks.mark_key(synced.me.identity)
    assert not store.add_signature_set([ids[0], ids[2]], sigmarks.set_mark(key, ids))  # a gap
    assert not store.add_signature_set([*ids, bytes(32)], sigmarks.set_mark(key, ids))
