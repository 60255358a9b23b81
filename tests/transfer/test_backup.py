"""Encrypted backups: nothing readable inside; restore brings back the vault and the member."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from tests.sync.helpers import PASSWORD as HOUSEHOLD_PASSWORD
from tests.sync.helpers import craft, household, sync
from tests.transfer.conftest import PASSWORD, new_vault
from wifisync.errors import AlreadyInitialisedError, WrongPasswordError
from wifisync.home import Home
from wifisync.model import crypto
from wifisync.model.identity import DeviceIdentity
from wifisync.model.membership import current_members
from wifisync.model.records import Membership, WrappedVaultKey
from wifisync.store import SqliteStore
from wifisync.transfer import backup
from wifisync.transfer.backup import BackupError, RevokedDeviceError, make_backup, restore_backup
from wifisync.vault.unlocked import Vault

SECRETS = (b"Door codes", b"Garage 1234", b"s3cret-value", PASSWORD.encode())


def filled() -> Vault:
    vault = new_vault()
    vault.add("Door codes", "note", {"notes": "Garage 1234"})
    vault.add("Router", "login", {"password": "s3cret-value"}, ["Network"], hidden=["password"])
    return vault


def test_backup_holds_nothing_readable_and_not_the_device_key() -> None:
    vault = filled()
    data = make_backup(vault)
    for secret in SECRETS:
        assert secret not in data
    assert b"PRIVATE KEY" not in data
    assert vault.identity.key_pem not in data


def test_restore_round_trip_brings_back_items_records_and_membership(tmp_path: Path) -> None:
    vault = filled()
    home = Home.locate(str(tmp_path / "restored"))
    restored = restore_backup(make_backup(vault), home, PASSWORD)
    assert restored.identity.device_id == vault.identity.device_id
    store = SqliteStore(home.store_file)
    try:
        assert store.fingerprint() == vault.store.fingerprint()
        assert store.seen() == vault.store.seen()
        again = Vault.unlock(store, DeviceIdentity.load(home.data_dir), PASSWORD)
        assert [(v.state.title, v.state.values, v.state.hidden) for v in again.items()] == [
            (v.state.title, v.state.values, v.state.hidden) for v in vault.items()]
        assert vault.identity.device_id in current_members(store)
        # The restored device writes on after its last sequence number.
        again.add("After restore")
        me = vault.identity.device_id
        assert store.max_seq(me) == vault.store.max_seq(me) + 1
    finally:
        store.close()


def test_restore_with_wrong_password_leaves_the_home_empty(tmp_path: Path) -> None:
    home = Home.locate(str(tmp_path / "r"))
    with pytest.raises(WrongPasswordError):
        restore_backup(make_backup(filled()), home, "wrong")
    assert not home.store_file.exists() and not DeviceIdentity.exists(home.data_dir)


def test_a_wrong_password_is_told_before_any_record_is_read(tmp_path: Path) -> None:
    """The head carries the wrapped key: with every record cut off, a wrong password is
    still told as such (it used to take the whole load to find out)."""
    data = make_backup(filled())
    head = data[:data.index(b"records") + len(b"records") + 1]
    home = Home.locate(str(tmp_path / "r"))
    with pytest.raises(WrongPasswordError):
        restore_backup(head, home, "wrong")
    with pytest.raises(BackupError):
        restore_backup(head, home, PASSWORD)  # the right one goes on, to the missing records
    assert not home.store_file.exists()


def test_a_backup_without_the_heads_key_still_restores(tmp_path: Path) -> None:
    """Backups written before the head carried the wrapped key open as they did."""
    data = make_backup(filled())
    doc = msgpack.unpackb(data[len(backup.MAGIC):])
    del doc["vault_key"]
    old = backup.MAGIC + msgpack.packb(doc, use_bin_type=True)
    home = Home.locate(str(tmp_path / "r"))
    with pytest.raises(WrongPasswordError):
        restore_backup(old, home, "wrong")
    assert restore_backup(old, home, PASSWORD).items == 2


def test_a_forged_heads_key_is_not_used(tmp_path: Path) -> None:
    """The head's copy is unsigned: one that differs from the signed record is only a hint
    and the signed record decides (here the password opens the forged copy, not the vault)."""
    vault = filled()
    data = make_backup(vault)
    doc = msgpack.unpackb(data[len(backup.MAGIC):])
    kdf = crypto.KdfParams.fresh(1, 8 * 2**10)
    doc["vault_key"] = WrappedVaultKey(kdf, crypto.wrap_vault_key(
        bytes(32), "forged", kdf)).encode()
    forged = backup.MAGIC + msgpack.packb(doc, use_bin_type=True)
    home = Home.locate(str(tmp_path / "r"))
    with pytest.raises(WrongPasswordError):
        restore_backup(forged, home, "forged")
    assert not home.store_file.exists()


def test_restore_refuses_a_home_that_holds_a_device(tmp_path: Path) -> None:
    home = Home.locate(str(tmp_path / "r"))
    DeviceIdentity.generate().save(home.data_dir)
    with pytest.raises(AlreadyInitialisedError):
        restore_backup(make_backup(filled()), home, PASSWORD)


def test_restore_of_a_revoked_device_says_so(tmp_path: Path) -> None:
    owner = filled()
    laptop = DeviceIdentity.generate()
    owner.write_member(Membership(laptop.cert_der, "laptop"))
    laptop_vault = Vault(owner.store, laptop, owner.vault_key)
    laptop_vault.add("written by laptop")
    owner.write_member(Membership(laptop.cert_der, "laptop", revoked=True,
                                    held=owner.store.origins()))
    home = Home.locate(str(tmp_path / "r"))
    with pytest.raises(RevokedDeviceError, match="revoked"):
        restore_backup(make_backup(laptop_vault), home, PASSWORD)
    assert not home.store_file.exists()


@pytest.mark.parametrize("damage", ["magic", "flip", "truncate"])
def test_damaged_backups_are_refused(tmp_path: Path, damage: str) -> None:
    data = bytearray(make_backup(filled()))
    if damage == "magic":
        data[0] ^= 1
    elif damage == "flip":
        data[len(data) // 2] ^= 0x40
    else:
        del data[len(data) // 2:]
    home = Home.locate(str(tmp_path / "r"))
    with pytest.raises((BackupError, WrongPasswordError)):
        restore_backup(bytes(data), home, PASSWORD)
    assert not home.store_file.exists()


def test_backup_identity_key_purpose_known_answer() -> None:
    # Pinned: changing it makes every existing backup's device key unreadable.
    assert crypto.derive_key(bytes(range(32)), "backup-identity").hex() == (
        "a0c295690ed2ada955e808d31ec71b69d5a6f4b189c4ff238788bd70290aa14b")


def test_every_members_backup_of_a_household_restores(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Records of every author come back, whatever order the device IDs sort in, also
    when a restore takes them in many batches (as for a large vault)."""
    monkeypatch.setattr(backup, "READ_RECORDS", 1)
    devices = household(3)
    for d in devices:
        d.vault.add(f"written on {d.name}")
    for a, b in ((devices[0], devices[1]), (devices[1], devices[2]), (devices[0], devices[1])):
        sync(a, b).run()
    for d in devices:
        home = Home.locate(str(tmp_path / d.name))
        restored = restore_backup(make_backup(d.vault), home, HOUSEHOLD_PASSWORD)
        assert restored.records == d.store.count_records()
        assert restored.items == 3


def test_a_signed_item_whose_payload_does_not_open_is_refused(tmp_path: Path) -> None:
    """Every record is checked on the way in; what only the vault key can check (a
    member's item payload) is checked before the restore is kept."""
    (d,) = household(1)
    d.vault.add("fine")
    d.store.append(craft(d, bytes(16)))  # signed by a member, but not sealed with the key
    home = Home.locate(str(tmp_path / "r"))
    with pytest.raises(BackupError, match=r"1 item\(s\) do not decrypt"):
        restore_backup(make_backup(d.vault), home, HOUSEHOLD_PASSWORD)
    assert not home.store_file.exists()
