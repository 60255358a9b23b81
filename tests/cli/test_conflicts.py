"""Concurrent versions from another device: shown merged with a count, settled by any write."""

from __future__ import annotations

import json

from tests.conftest import PASSWORD, Cli
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Membership, Record
from wifisync.store import MemoryStore, SqliteStore
from wifisync.vault.unlocked import META_VAULT_ID, Vault


def edit_elsewhere(cli: Cli, item: str, field: str, value: str) -> list[Record]:
    """Edit ``item`` as a second member device working on a copy of the store taken now.

    Returns that device's records, for :func:`deliver` once this device has edited too.
    """
    store = SqliteStore(cli.home / "data" / "vault.db")
    try:
        here = Vault.unlock(store, DeviceIdentity.load(cli.home / "data"), PASSWORD)
        phone = DeviceIdentity.generate()
        here.write_member(Membership(phone.cert_der, "phone"))
        copy = MemoryStore()
        copy.set_meta(META_VAULT_ID, here.vault_id)
        for origin in store.seen():
            for record in store.records_after(origin, 0, 1 << 30):
                copy.append(record)
        Vault(copy, phone, here.vault_key).edit(bytes.fromhex(item), fields={field: value})
        return copy.records_after(phone.device_id, 0, 100)
    finally:
        store.close()


def deliver(cli: Cli, records: list[Record]) -> None:
    """Append another device's records to this home's store, as sync would."""
    store = SqliteStore(cli.home / "data" / "vault.db")
    try:
        for record in records:
            store.append(record)
    finally:
        store.close()


def test_conflicting_versions_are_shown_merged_and_settled_by_the_next_write(
        initialised_cli: Cli) -> None:
    c = initialised_cli
    item = c.ok("add", "Router", "--field", "password=one", "--field", "user=admin").strip()
    from_phone = edit_elsewhere(c, item, "user", "root")
    c.ok("edit", item, "--field", "password=two")
    deliver(c, from_phone)

    shown = json.loads(c.ok("show", item, "--json"))
    assert shown["conflicts"] == 1
    assert shown["fields"] == {"password": "two", "user": "root"}  # both edits survive
    assert json.loads(c.ok("show", item, "--json"))["conflicts"] == 1  # reading never writes
    assert "conflicts: 1" in c.ok("show", item)

    c.ok("add", "Unrelated")
    settled = json.loads(c.ok("show", item, "--json"))
    assert settled["conflicts"] == 0
    assert settled["fields"] == {"password": "two", "user": "root"}
    authors = {v["author_name"] for v in json.loads(c.ok("history", item, "--json"))}
    assert authors == {"test-device", "phone"}


def test_status_counts_items_right_after_deletes_edits_and_conflicts(
        initialised_cli: Cli) -> None:
    c = initialised_cli

    def counts() -> tuple[int, int]:
        vault = json.loads(c.ok("status", "--json"))["vault"]
        return vault["items"], vault["records"]

    _, records = counts()
    router = c.ok("add", "Router", "--field", "password=one").strip()
    mail = c.ok("add", "Mail").strip()
    c.ok("add", "Bank")
    assert counts() == (3, records + 3)
    c.ok("edit", mail, "--field", "user=ann")
    assert counts() == (3, records + 4)
    c.ok("rm", mail)
    assert counts() == (2, records + 5)
    from_phone = edit_elsewhere(c, router, "user", "root")  # adds the phone's membership
    c.ok("rm", router)
    deliver(c, from_phone)  # an edit concurrent with the delete: the item lives on
    assert counts() == (2, records + 8)
    c.ok("undelete", mail)  # and, being a write, settles the router's two versions
    assert counts() == (3, records + 10)
