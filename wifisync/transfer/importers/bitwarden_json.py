"""Bitwarden's unencrypted JSON export (also inside its ``.zip`` export as ``data.json``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from wifisync.transfer.archive import is_zip, open_member, open_zip, read_member
from wifisync.transfer.fields import (
    BRAND,
    CARDHOLDER,
    CODE,
    EXPIRY,
    NUMBER,
    PASSWORD,
    SOURCE_TYPE,
    TOTP,
    URL,
    USERNAME,
)
from wifisync.transfer.model import (
    NOTES,
    ImportedItem,
    ImportFormatError,
    ItemDraft,
    ParseResult,
    with_files,
)
from wifisync.transfer.text import decode, normalise_newlines

FORMAT = "bitwarden-json"
FAMILY = "bitwarden"
READS_BESIDE = True  # a plain JSON export's attachments are in a folder beside it

TYPES = {1: "login", 2: "note", 3: "card", 4: "identity"}
TYPE_NAMES = {5: "SSH key", 6: "bank account", 7: "driver's license", 8: "passport"}
IDENTITY_FIELDS = (
    ("title", "title"), ("firstName", "first name"), ("middleName", "middle name"),
    ("lastName", "last name"), ("address1", "address 1"), ("address2", "address 2"),
    ("address3", "address 3"), ("city", "city"), ("state", "state"),
    ("postalCode", "postal code"), ("country", "country"), ("company", "company"),
    ("email", "email"), ("phone", "phone"), ("ssn", "ssn"), ("username", USERNAME),
    ("passportNumber", "passport number"), ("licenseNumber", "license number"),
)
SECRET_IDENTITY = frozenset({"ssn", "passport number", "license number"})
LINKED: dict[int, str] = {100: "username", 101: "password", 300: "cardholder", 301: "expiry month",
          302: "expiry year", 303: "code", 304: "brand", 305: "number"}
FIELD_TEXT, FIELD_HIDDEN, FIELD_BOOLEAN, FIELD_LINKED = 0, 1, 2, 3
KNOWN_KEYS = frozenset({
    "id", "organizationId", "folderId", "type", "reprompt", "name", "notes", "favorite",
    "fields", "passwordHistory", "creationDate", "revisionDate", "deletedDate", "archivedDate",
    "collectionIds", "key", "login", "secureNote", "card", "identity", "sshKey", "attachments",
})


def sniff(data: bytes) -> bool:
    """A JSON object with ``items`` and ``encrypted``, or a zip holding ``data.json``."""
    if is_zip(data):
        return _holds_data_json(data)
    doc = _json_object(data)
    if doc is None:
        return False
    if doc.get("encrypted") is True:
        return "passwordProtected" in doc or "encKeyValidation_DO_NOT_EDIT" in doc
    return "items" in doc and ("encrypted" in doc or "folders" in doc or "collections" in doc)


def _holds_data_json(data: bytes) -> bool:
    try:
        with open_zip(data) as z:
            return "data.json" in z.namelist()
    except ImportFormatError:
        return False


def _json_object(data: bytes) -> dict[str, Any] | None:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"{"):
        return None
    try:
        doc = json.loads(decode(data))
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


Opener = Callable[[], IO[bytes]]


def _zip_files(data: bytes) -> dict[str, list[tuple[str, Opener]]]:
    """The zip's ``attachments/<cipherId>/<fileName>`` members, by cipher ID."""
    out: dict[str, list[tuple[str, Opener]]] = {}
    with open_zip(data) as z:
        for info in z.infolist():
            parts = info.filename.split("/")
            if len(parts) == 3 and parts[0] == "attachments" and parts[1] and parts[2]:
                out.setdefault(parts[1], []).append((parts[2], _zip_opener(data, info.filename)))
    return out


def _zip_opener(data: bytes, name: str) -> Opener:
    return lambda: open_member(data, name)


def _folder_files(folder: Path, cipher_id: str) -> list[tuple[str, Opener]]:
    """Files in ``attachments/<cipherId>/`` beside a JSON export (regular files only)."""
    if not cipher_id or cipher_id in (".", "..") or "/" in cipher_id or "\\" in cipher_id:
        return []
    where = folder / cipher_id
    if not where.is_dir() or where.is_symlink():
        return []
    return [(p.name, _file_opener(p)) for p in sorted(where.iterdir())
            if p.is_file() and not p.is_symlink()]


def _file_opener(path: Path) -> Opener:
    return lambda: path.open("rb")


def load_document(data: bytes) -> dict[str, Any]:
    """The export's top-level object, refusing encrypted exports with the way out."""
    if is_zip(data):
        with open_zip(data) as z:
            if "data.json" not in z.namelist():
                raise ImportFormatError("the zip file holds no Bitwarden data.json")
            data = read_member(z, "data.json")
    try:
        doc = json.loads(decode(data))
    except ValueError as exc:
        raise ImportFormatError(f"not valid JSON: {exc}") from exc
    if isinstance(doc, dict) and doc.get("encrypted") is True:
        kind = "password-protected" if doc.get("passwordProtected") else "account-encrypted"
        raise ImportFormatError(
            f"this Bitwarden export is {kind}; export again choosing the .json format "
            "without encryption")
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise ImportFormatError("not a Bitwarden export: no list of items")
    return doc


def parse(data: bytes, source_password: str | None = None, path: Path | None = None
          ) -> ParseResult:
    """Every item of the export with its attachments; a malformed item is reported and skipped.

    Attachments come from the zip export's ``attachments/<cipherId>/`` members, or, for a
    plain JSON export, from an ``attachments/<cipherId>/`` folder beside the file.
    """
    doc = load_document(data)
    result = ParseResult(FORMAT)
    zipped = _zip_files(data) if is_zip(data) else None
    folder = None if path is None else path.parent / "attachments"
    folders = {f.get("id"): f.get("name") for f in doc.get("folders") or []
               if isinstance(f, dict)}
    collections = {c.get("id"): c.get("name") for c in doc.get("collections") or []
                   if isinstance(c, dict)}
    for n, raw in enumerate(doc["items"], start=1):
        position = f"item {n}"
        try:
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            position = f"item {n} ({raw.get('name')!r})" if raw.get("name") else position
            item = _item(raw, folders, collections)
        except (ValueError, TypeError, AttributeError) as exc:
            result.problem(position, str(exc) or type(exc).__name__)
            continue
        cipher = raw["id"] if isinstance(raw.get("id"), str) else ""
        if zipped is not None:
            found = zipped.get(cipher, [])
        else:
            found = [] if folder is None else _folder_files(folder, cipher)
        result.items.append(with_files(item, found))
        listed = raw.get("attachments")
        missing = (len(listed) if isinstance(listed, list) else 0) - len(found)
        if missing > 0:
            where = "in the zip" if zipped is not None else "beside the file"
            result.problem(position, f"{missing} attachment(s) listed but not found {where} "
                                     f"(attachments/{cipher}/): not imported")
    return result


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return normalise_newlines(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _item(raw: dict[str, Any], folders: dict[Any, Any], collections: dict[Any, Any]
          ) -> ImportedItem:
    kind = raw.get("type")
    if not isinstance(kind, int) or isinstance(kind, bool):
        raise ValueError(f"item type {kind!r} is not a number")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError("item name is not text")
    draft = ItemDraft(name or "", TYPES.get(kind, "note"))
    if kind not in TYPES:
        draft.put(SOURCE_TYPE, TYPE_NAMES.get(kind, f"Bitwarden type {kind}"), custom=True)
    folder = folders.get(raw.get("folderId"))
    draft.tag(folder if isinstance(folder, str) else None)
    for cid in raw.get("collectionIds") or []:
        c = collections.get(cid)
        draft.tag(c if isinstance(c, str) else None)
    if raw.get("favorite"):
        draft.tag("favorite")
    if kind == 1:
        _login(draft, raw.get("login") or {})
    elif kind == 3:
        _card(draft, raw.get("card") or {})
    elif kind == 4:
        ident = raw.get("identity") or {}
        for key, label in IDENTITY_FIELDS:
            draft.put(label, _text(ident.get(key)), hidden=label in SECRET_IDENTITY)
        _rest(draft, ident, {k for k, _ in IDENTITY_FIELDS})
    elif kind not in TYPES:
        for key, value in raw.items():
            if key not in KNOWN_KEYS or (key == "sshKey" and isinstance(value, dict)):
                if isinstance(value, dict):
                    for k, v in value.items():
                        draft.put(k, _text(v), hidden="private" in k.lower(), custom=True)
                else:
                    draft.put(key, _text(value), custom=True)
    for f in raw.get("fields") or []:
        if not isinstance(f, dict):
            raise ValueError("a custom field is not an object")
        ftype = f.get("type", FIELD_TEXT)
        value = f.get("value")
        if ftype == FIELD_LINKED:
            linked = f.get("linkedId")
            target = LINKED.get(linked, linked) if isinstance(linked, int) else linked
            value = f"(linked to {target})"
        draft.put(_text(f.get("name")) or "field", _text(value), hidden=ftype == FIELD_HIDDEN,
                  custom=True)
    if raw.get("reprompt") == 1:
        draft.put("master password re-prompt", "true", custom=True)
    history = [h for h in raw.get("passwordHistory") or [] if isinstance(h, dict)]
    if history:
        lines = [f"{h.get('lastUsedDate') or ''} {h.get('password') or ''}".strip()
                 for h in history]
        draft.put("password history", "\n".join(lines), hidden=True, custom=True)
    draft.put(NOTES, _text(raw.get("notes")))
    source = raw.get("id")
    return draft.build(source if isinstance(source, str) else None)


def _login(draft: ItemDraft, login: dict[str, Any]) -> None:
    for u in login.get("uris") or []:
        if isinstance(u, dict):
            draft.put(URL, _text(u.get("uri")))
    draft.put(USERNAME, _text(login.get("username")))
    draft.put(PASSWORD, _text(login.get("password")), hidden=True)
    draft.put(TOTP, _text(login.get("totp")), hidden=True)
    passkeys = login.get("fido2Credentials") or []
    if passkeys:
        draft.put("passkeys", _text(passkeys), hidden=True, custom=True)
    _rest(draft, login, {"uris", "username", "password", "totp", "fido2Credentials",
                         "passwordRevisionDate"})


def _card(draft: ItemDraft, card: dict[str, Any]) -> None:
    draft.put(CARDHOLDER, _text(card.get("cardholderName")))
    draft.put(BRAND, _text(card.get("brand")))
    draft.put(NUMBER, _text(card.get("number")), hidden=True)
    month, year = _text(card.get("expMonth")), _text(card.get("expYear"))
    if month or year:
        draft.put(EXPIRY, f"{month.zfill(2)}/{year}" if month and year else month or year)
    draft.put(CODE, _text(card.get("code")), hidden=True)
    _rest(draft, card, {"cardholderName", "brand", "number", "expMonth", "expYear", "code"})


def _rest(draft: ItemDraft, obj: dict[str, Any], known: set[str]) -> None:
    """Keys a newer Bitwarden may add: kept as custom fields rather than dropped."""
    for key, value in obj.items():
        if key not in known:
            draft.put(key, _text(value), custom=True)
