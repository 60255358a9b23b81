"""Each format's parser on constructed files: mapping, quirks, bad items, detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.transfer import samples
from wifisync.transfer import importers
from wifisync.transfer.model import ImportedItem, ImportFormatError, SourcePasswordError


def by_title(items: list[ImportedItem]) -> dict[str, ImportedItem]:
    return {i.title: i for i in items}


# --- mSecure ------------------------------------------------------------------------------


def test_msecure_layout_b_maps_labels_keeps_ids_tags_and_custom_fields() -> None:
    r = importers.parse(samples.MSECURE_B.encode())
    assert r.format == "msecure-csv" and not r.problems
    items = by_title(r.items)
    router = items["Home Router"]
    assert (router.type, router.source_id, router.tags) == ("login", "1482213", ("Network",))
    # The value is everything after the second pipe, pipes included.
    assert router.values == {"url": "http://192.168.1.1", "username": "admin",
                             "password": "c0rrect|horse",
                             "notes": "Admin UI on LAN only\nrotated 2023"}
    assert router.hidden == {"password"}
    card = items["Travel Visa"]
    assert card.type == "card"
    assert card.values["number"] == "4111 1111 1111 1111"
    assert card.values["expiry"] == "09/2029"
    assert card.values["cardholder"] == "Ada Lovelace"
    # A quoted cell holding a comma stays one field.
    assert card.values["Billing Address"] == "1 Main St, Springfield"
    assert set(card.custom) == {"Issuing Bank", "Phone Number", "Billing Address"}
    assert {"code", "pin", "number"} <= card.hidden
    note = items["Door codes"]
    assert (note.type, note.values) == ("note", {"notes": "Garage 1234\nShed 5678"})


def test_msecure_title_starting_with_msecure_is_not_taken_for_the_marker() -> None:
    data = samples.MSECURE_B + "mSecure license|77,Login,,,Username|7|me,\n"
    titles = [i.title for i in importers.parse(data.encode()).items]
    assert "mSecure license" in titles


def test_msecure_cp1252_file_with_crlf_and_bom_free_bytes() -> None:
    data = ("mSecure6 CSV export file\r\nCaf\u00e9 Wi-Fi|5,Login,Caf\u00e9,"
            "Gr\u00fc\u00dfe\\nzwei,Password|8|p\u00e4ss,\r\n").encode("cp1252")
    [item] = importers.parse(data).items
    assert item.title == "Caf\u00e9 Wi-Fi"
    assert item.values == {"password": "p\u00e4ss", "notes": "Gr\u00fc\u00dfe\nzwei"}


def test_msecure_utf8_bom_is_ignored() -> None:
    data = b"\xef\xbb\xbf" + samples.MSECURE_B.encode()
    assert len(importers.parse(data).items) == 3


def test_msecure_layout_a_by_position_with_vertical_tab_line_breaks() -> None:
    r = importers.parse(samples.MSECURE_A_MAC.encode())
    items = by_title(r.items)
    router = items["Home Router"]
    assert router.type == "login" and router.tags == ("Personal",)
    assert router.values == {"url": "http://192.168.1.1", "username": "admin",
                             "password": "s3cret", "notes": "line one\nline two"}
    card = items["Visa"]
    assert card.values["code"] == "321" and card.values["cardholder"] == "Ada Lovelace"
    assert card.values["Bank"] == "Example Bank"
    car = items["Car"]  # an unknown type keeps every value, by position
    assert car.type == "note"
    assert car.values == {"source type": "Vehicle Info", "License No.": "AB-123",
                          "VIN": "VIN999"}


def test_msecure_layout_a_windows_without_marker_is_detected() -> None:
    data = ('Personal,Login,Mail,say \\"hi\\"\\nbye,https://mail.example,me,'
            "\u201cquoted\u201d\n").encode("cp1252")
    r = importers.parse(data)
    assert r.format == "msecure-csv"
    [item] = r.items
    assert item.values["notes"] == 'say "hi"\nbye'
    assert item.values["password"] == '"quoted"'


def test_msecure_bad_row_is_reported_with_its_line_and_the_rest_imported() -> None:
    data = samples.MSECURE_B.replace("Door codes|9001", "Broken|1\nDoor codes|9001")
    r = importers.parse(data.encode())
    assert [i.title for i in r.items] == ["Home Router", "Travel Visa", "Door codes"]
    [problem] = r.problems
    assert problem.position == "line 4" and "template" in problem.reason


# --- Bitwarden ----------------------------------------------------------------------------


def test_bitwarden_json_types_1_to_4_with_custom_fields_and_several_uris() -> None:
    r = importers.parse(json.dumps(samples.BITWARDEN_JSON).encode())
    assert r.format == "bitwarden-json" and not r.problems
    items = by_title(r.items)
    router = items["Home Router"]
    assert router.source_id == "i1" and set(router.tags) == {"Network", "favorite"}
    v = router.values
    assert (v["url"], v["url 2"]) == ("http://192.168.1.1", "https://router.local")
    assert (v["username"], v["password"], v["PIN"], v["Floor"]) == ("admin", "s3cret", "1234",
                                                                   "2")
    assert v["Admin"] == "true" and v["Login as"] == "(linked to username)"
    assert "old" in v["password history"]
    assert {"password", "PIN", "password history"} <= router.hidden and "Floor" not in (
        router.hidden)
    assert items["Door codes"].values == {"notes": "Garage 1234\nShed 5678"}
    card = items["Travel Visa"]
    assert card.type == "card" and card.tags == ("Emails/WS",)
    assert card.values["expiry"] == "09/2029" and card.values["code"] == "321"
    assert card.values["master password re-prompt"] == "true"
    me = items["Me"]
    assert me.type == "identity" and me.values["last name"] == "Lovelace"
    assert "ssn" in me.hidden


def test_bitwarden_json_unknown_type_becomes_a_note_keeping_every_value() -> None:
    doc = {"encrypted": False, "items": [
        {"id": "k", "type": 5, "name": "Server key",
         "sshKey": {"privateKey": "-----BEGIN", "publicKey": "ssh-ed25519 AAA",
                    "keyFingerprint": "SHA256:x"}}]}
    [item] = importers.parse(json.dumps(doc).encode()).items
    assert item.type == "note"
    assert item.values == {"source type": "SSH key", "privateKey": "-----BEGIN",
                           "publicKey": "ssh-ed25519 AAA", "keyFingerprint": "SHA256:x"}
    assert item.hidden == {"privateKey"}


def test_bitwarden_json_bad_items_are_skipped_with_position() -> None:
    doc = dict(samples.BITWARDEN_JSON)
    doc["items"] = [*doc["items"], "nonsense", {"id": "z", "type": "login", "name": "Odd"}]
    r = importers.parse(json.dumps(doc).encode())
    assert len(r.items) == 4
    assert [p.position for p in r.problems] == ["item 5", "item 6 ('Odd')"]


def test_bitwarden_encrypted_export_is_refused_with_the_way_out() -> None:
    doc = {"encrypted": True, "passwordProtected": True, "salt": "x", "kdfType": 0,
           "kdfIterations": 600000, "encKeyValidation_DO_NOT_EDIT": "2.x|y|z", "data": "2.a|b|c"}
    with pytest.raises(ImportFormatError, match="password-protected"):
        importers.parse(json.dumps(doc).encode())


def test_bitwarden_zip_reads_data_json_and_its_attachments() -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.json", json.dumps(samples.BITWARDEN_JSON))
        z.writestr("attachments/i1/photo.jpg", b"\xff\xd8")
        z.writestr("attachments/i1/a/b.txt", b"nested: not a Bitwarden attachment path")
    r = importers.parse(buf.getvalue())
    assert r.format == "bitwarden-json" and len(r.items) == 4 and not r.problems
    router = by_title(r.items)["Home Router"]
    assert [(f.name, f.open().read()) for f in router.attachments] == [("photo.jpg", b"\xff\xd8")]
    assert sum(len(i.attachments) for i in r.items) == 1


def test_bitwarden_json_reads_attachments_from_the_folder_beside_it(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(samples.BITWARDEN_JSON))
    doc["items"][0]["attachments"] = [{"id": "a1", "fileName": "scan.pdf", "size": "4"},
                                      {"id": "a2", "fileName": "gone.txt", "size": "1"}]
    export = tmp_path / "bitwarden_export.json"
    export.write_text(json.dumps(doc))
    (tmp_path / "attachments" / "i1").mkdir(parents=True)
    (tmp_path / "attachments" / "i1" / "scan.pdf").write_bytes(b"%PDF")
    r = importers.parse(export.read_bytes(), path=export)
    router = by_title(r.items)["Home Router"]
    assert [(f.name, f.open().read()) for f in router.attachments] == [("scan.pdf", b"%PDF")]
    [problem] = r.problems  # one listed file is not in the folder: said, not silently dropped
    assert "1 attachment(s) listed but not found" in problem.reason


def test_bitwarden_csv_uris_fields_and_notes() -> None:
    r = importers.parse(samples.BITWARDEN_CSV.encode())
    assert r.format == "bitwarden-csv" and not r.problems
    router, door = r.items
    assert router.values == {
        "url": "http://192.168.1.1", "url 2": "https://router.local", "username": "admin",
        "password": "s3cret", "totp": "JBSWY3DPEHPK3PXP", "PIN": "1234", "Recovery": "a:b",
        "notes": "line 1\nline 2"}
    assert set(router.tags) == {"Network", "favorite"} and router.source_id is None
    assert door.type == "note" and door.values == {"notes": "Garage 1234"}


def test_bitwarden_csv_row_with_surplus_cells_is_reported() -> None:
    data = samples.BITWARDEN_CSV + ",,login,Broken,x,,0,u,admin,pw,,EXTRA,MORE\n"
    r = importers.parse(data.encode())
    assert len(r.items) == 2
    assert r.problems[0].position == "line 6"


# --- 1Password ----------------------------------------------------------------------------


def test_onepassword_csv() -> None:
    r = importers.parse(samples.ONEPASSWORD_CSV.encode())
    assert r.format == "1password-csv"
    [item] = r.items
    assert item.values["totp"].startswith("otpauth://") and "totp" in item.hidden
    assert item.values["notes"] == "line 1\nline 2"
    assert set(item.tags) == {"Network", "favorite"}


def test_1pux_items_sections_vault_tags_and_attachments() -> None:
    document = {"uuid": "d1", "categoryUuid": "006", "overview": {"title": "Passport scan"},
                "details": {"documentAttributes": {"fileName": "scan.pdf", "documentId": "doc1"},
                            "sections": [{"fields": [{"title": "Back", "id": "b", "value": {
                                "file": {"fileName": "back.png", "documentId": "doc2"}}}]}]}}
    data = samples.onepux([samples.ONEPUX_ITEM, samples.ONEPUX_CARD, 42, document],
                          files={"doc1__scan.pdf": b"%PDF", "doc2__back.png": b"\x89PNG",
                                 "doc9__orphan.txt": b"?"})
    r = importers.parse(data)
    assert r.format == "1pux"
    items = by_title(r.items)
    router = items["Home Router"]
    assert router.source_id == "abc"
    assert set(router.tags) == {"Personal", "Network/Home", "favorite"}
    v = router.values
    assert (v["username"], v["password"], v["PIN"], v["Floor"]) == ("admin", "s3cret", "1234",
                                                                   "2")
    assert v["url 2"] == "https://router.local" and v["totp"] == "JBSWY3DPEHPK3PXP"
    assert v["remember"] == '{"checked": true}'  # an object value is kept, not a crash
    assert {"password", "PIN", "totp"} <= router.hidden
    card = items["Travel Visa"]
    assert card.type == "card" and "archived" in card.tags
    assert card.values == {"number": "4111111111111111", "expiry": "09/2029", "code": "321",
                           "cardholder": "Ada Lovelace"}
    scan = items["Passport scan"]
    assert [(f.name, f.open().read()) for f in scan.attachments] == [
        ("scan.pdf", b"%PDF"), ("back.png", b"\x89PNG")]
    assert [p.position for p in r.problems] == ["item 3", "files/"]  # the orphan is said


# --- KeePass ------------------------------------------------------------------------------


def test_kdbx_groups_custom_protected_fields_references_and_recycle_bin(kdbx_bytes: bytes
                                                                       ) -> None:
    r = importers.parse(kdbx_bytes, source_password=samples.KDBX_PASSWORD)
    assert r.format == "kdbx"
    items = by_title(r.items)
    assert "Old thing" not in items  # in the recycle bin
    router = items["Home Router"]
    assert set(router.tags) == {"Network/Home", "infra", "lan"}
    assert router.values["PIN"] == "1234" and "PIN" in router.hidden
    assert router.values["Floor"] == "2" and "Floor" not in router.hidden
    assert router.values["url 2"] == "https://router.local"
    assert router.values["notes"] == "line 1\nline 2"
    assert router.source_id is not None and len(router.source_id) == 32
    alias = items["Router alias"]
    assert (alias.values["username"], alias.values["password"]) == ("admin", "s3cret")
    assert items["Door codes"].type == "note"
    assert [(f.name, f.open().read()) for f in router.attachments] == [
        ("router.cfg", b"config-backup")]
    assert not any("router.cfg" in p.reason for p in r.problems)


def test_kdbx_wrong_or_missing_password(kdbx_bytes: bytes) -> None:
    with pytest.raises(SourcePasswordError, match="wrong password"):
        importers.parse(kdbx_bytes, source_password="nope")
    with pytest.raises(SourcePasswordError):
        importers.parse(kdbx_bytes)


def test_kdbx_truncated_file_is_unreadable(kdbx_bytes: bytes) -> None:
    data = kdbx_bytes[:200]
    with pytest.raises(ImportFormatError, match="KeePass"):
        importers.parse(data, source_password=samples.KDBX_PASSWORD)


def test_keepassxc_csv_root_group_dropped_doubled_quotes_kept() -> None:
    r = importers.parse(samples.KEEPASSXC_CSV.encode())
    assert r.format == "keepassxc-csv"
    [item] = r.items
    assert item.tags == ("Network",)
    assert item.values["password"] == 's3c"ret'
    assert item.values["notes"] == "line 1\nline 2"
    assert "Icon" not in item.values and "icon" not in item.values


# --- detection and malformed files ----------------------------------------------------------


def test_undetectable_file_names_the_known_formats() -> None:
    with pytest.raises(ImportFormatError) as info:
        importers.parse(b"just some words\nand more\n")
    for name in importers.FORMAT_NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize("data", [b"", b"{not json", b"PK\x03\x04broken zip"])
def test_malformed_files_fail_cleanly(data: bytes) -> None:
    with pytest.raises(ImportFormatError):
        importers.parse(data)


def test_forced_format_that_does_not_fit_fails_cleanly() -> None:
    with pytest.raises(ImportFormatError):
        importers.parse(samples.MSECURE_B.encode(), "bitwarden-json")
    with pytest.raises(ImportFormatError, match="unknown format"):
        importers.parse(b"x", "lastpass")
