"""Imports land in the vault as ordinary items; re-imports update or skip, never duplicate."""

from __future__ import annotations

import json

from tests.transfer import samples
from wifisync.model.records import Kind
from wifisync.transfer import importers
from wifisync.transfer.importing import import_items
from wifisync.vault.unlocked import ItemView, Vault


def run(vault: Vault, data: bytes, dry_run: bool = False, tags: tuple[str, ...] = (),
        password: str | None = None) -> dict[str, int]:
    module = importers.importer(None, data)
    parsed = module.parse(data, password)
    summary = import_items(vault, parsed, module.FAMILY, tags, dry_run)
    return {o: summary.total(o) for o in ("imported", "updated", "skipped")}


def titled(vault: Vault, title: str) -> ItemView:
    [view] = [v for v in vault.items() if v.state.title == title]
    return view


def test_imported_items_are_encrypted_records_with_hidden_flags_and_source() -> None:
    from tests.transfer.conftest import new_vault

    vault = new_vault()
    assert run(vault, samples.MSECURE_B.encode()) == {"imported": 3, "updated": 0, "skipped": 0}
    router = titled(vault, "Home Router").state
    assert router.type == "login" and router.tags == ["Network"]
    assert router.values["password"] == "c0rrect|horse"
    assert router.hidden == ["password"]
    assert router.source == "msecure:1482213"
    card = titled(vault, "Travel Visa").state
    assert card.values["Billing Address"] == "1 Main St, Springfield"
    for _item, held in vault.store.heads_of_kind(Kind.ITEM):
        assert b"c0rrect" not in held[0].encoded  # the payload is ciphertext


def test_reimport_skips_everything_and_writes_nothing(vault: Vault) -> None:
    data = json.dumps(samples.BITWARDEN_JSON).encode()
    run(vault, data)
    before = vault.store.count_records()
    assert run(vault, data) == {"imported": 0, "updated": 0, "skipped": 4}
    assert vault.store.count_records() == before
    assert len(vault.items()) == 4


def test_reimport_of_a_changed_source_updates_in_place_and_keeps_user_tags(vault: Vault
                                                                           ) -> None:
    run(vault, samples.MSECURE_B.encode())
    router = titled(vault, "Home Router")
    vault.edit(router.id, tags=[*router.state.tags, "mine"])
    changed = samples.MSECURE_B.replace("c0rrect|horse", "n3w-pass")
    assert run(vault, changed.encode()) == {"imported": 0, "updated": 1, "skipped": 2}
    state = vault.get(router.id).state
    assert state.values["password"] == "n3w-pass"
    assert state.tags == ["Network", "mine"]
    assert len(vault.items()) == 3


def test_sources_without_ids_are_matched_by_a_stable_hash(vault: Vault) -> None:
    run(vault, samples.BITWARDEN_CSV.encode())
    assert run(vault, samples.BITWARDEN_CSV.encode())["skipped"] == 2
    changed = samples.BITWARDEN_CSV.replace(",s3cret,", ",rotated,")
    assert run(vault, changed.encode()) == {"imported": 0, "updated": 1, "skipped": 1}
    assert titled(vault, "Home Router").state.values["password"] == "rotated"


def test_identical_rows_stay_two_items_and_reimport_still_skips(vault: Vault) -> None:
    row = '"Wi-Fi","","guest","pw","","false","false","",""\n'
    data = ("Title,Url,Username,Password,OTPAuth,Favorite,Archived,Tags,Notes\n" + row * 2)
    assert run(vault, data.encode())["imported"] == 2
    assert run(vault, data.encode()) == {"imported": 0, "updated": 0, "skipped": 2}


def test_dry_run_counts_but_writes_nothing(vault: Vault) -> None:
    before = vault.store.count_records()
    assert run(vault, samples.MSECURE_B.encode(), dry_run=True)["imported"] == 3
    assert vault.store.count_records() == before and vault.items() == []


def test_extra_tags_are_added_to_every_item(vault: Vault) -> None:
    run(vault, samples.MSECURE_B.encode(), tags=("from-msecure",))
    items = vault.items()
    assert len(items) == 3 and all("from-msecure" in v.state.tags for v in items)


def test_kdbx_import_and_reimport(vault: Vault, kdbx_bytes: bytes) -> None:
    first = run(vault, kdbx_bytes, password=samples.KDBX_PASSWORD)
    assert first == {"imported": 3, "updated": 0, "skipped": 0}
    router = titled(vault, "Home Router").state
    assert "PIN" in router.hidden and router.values["Floor"] == "2"
    again = run(vault, kdbx_bytes, password=samples.KDBX_PASSWORD)
    assert again == {"imported": 0, "updated": 0, "skipped": 3}


def test_summary_lists_types_custom_fields_and_problems(vault: Vault) -> None:
    data = samples.MSECURE_B.replace("Door codes|9001", "Broken|1\nDoor codes|9001").encode()
    module = importers.importer(None, data)
    summary = import_items(vault, module.parse(data), module.FAMILY)
    text = "\n".join(summary.lines())
    assert "msecure-csv: 3 imported, 0 updated, 0 skipped" in text
    assert "  card: 1 imported" in text
    assert "custom fields kept: Billing Address (1), Issuing Bank (1), Phone Number (1)" in text
    assert "line 4: " in text


def test_an_import_signs_its_items_together_and_a_peer_accepts_each() -> None:
    """One signature per tree of records; each still holds alone on a peer that checks it."""
    from tests.sync.helpers import household, sync

    a, b = household(2)
    run(a.vault, samples.MSECURE_B.encode())
    imported = [held[0] for _item, held in a.store.heads_of_kind(Kind.ITEM)]
    assert len(imported) == 3 and all(r.proof for r in imported)
    assert len({r.signature for r in imported}) == 1
    assert sorted(r.header.seq for r in imported) == list(
        range(min(r.header.seq for r in imported), max(r.header.seq for r in imported) + 1))
    wire = sync(a, b)
    assert wire.sessions[1].stats.refused == 0
    assert {r.id for r in imported} <= b.record_ids()
    assert {v.state.title for v in b.vault.items()} == {v.state.title for v in a.vault.items()}
