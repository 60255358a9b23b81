"""1Password's 1PUX export: a zip whose ``export.data`` holds accounts, vaults and items."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
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

FORMAT = "1pux"
FAMILY = "1password"
CATEGORIES = {
    "001": ("login", None), "002": ("card", None), "003": ("note", None),
    "004": ("identity", None), "005": ("login", "Password"), "006": ("note", "Document"),
    "100": ("note", "Software License"), "101": ("note", "Bank Account"),
    "102": ("login", "Database"), "103": ("identity", "Driver License"),
    "104": ("identity", "Outdoor License"), "105": ("identity", "Membership"),
    "106": ("identity", "Passport"), "107": ("note", "Rewards"), "108": ("identity", "SSN"),
    "109": ("login", "Wireless Router"), "110": ("login", "Server"), "111": ("login", "Email"),
    "112": ("login", "API Credential"), "113": ("note", "Medical Record"),
    "114": ("note", "SSH Key"),
}
#: Section field IDs that are well-known fields of ours.
WELL_KNOWN = {
    "ccnum": NUMBER, "cvv": CODE, "cardholder": CARDHOLDER, "expiry": EXPIRY, "type": BRAND,
    "firstname": "first name", "lastname": "last name", "initial": "initial",
    "defphone": "phone", "company": "company", "email": "email", "pin": "pin",
}
SECRET_KINDS = frozenset({"concealed", "totp", "creditCardNumber"})


def sniff(data: bytes) -> bool:
    """A zip holding ``export.data`` (or that JSON on its own, with ``accounts``)."""
    if is_zip(data):
        try:
            with open_zip(data) as z:
                return "export.data" in z.namelist()
        except ImportFormatError:
            return False
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"{"):
        return False
    try:
        doc = json.loads(decode(data))
    except ValueError:
        return False
    return isinstance(doc, dict) and isinstance(doc.get("accounts"), list)


class _Files:
    """The zip's ``files/<documentId>__<fileName>`` members, found by document ID."""

    def __init__(self, data: bytes, names: list[str]) -> None:
        self.data = data
        self.by_id: dict[str, str] = {}
        self.used: set[str] = set()
        for name in names:
            if name.startswith("files/") and not name.endswith("/"):
                document_id = name[len("files/"):].split("__", 1)[0]
                self.by_id.setdefault(document_id, name)

    def opener(self, document_id: str) -> Callable[[], IO[bytes]] | None:
        """How to open a document's file, or None when the zip lacks it."""
        name = self.by_id.get(document_id)
        if name is None:
            return None
        self.used.add(document_id)
        data = self.data
        return lambda: open_member(data, name)


def _document(data: bytes) -> tuple[dict[str, Any], _Files | None]:
    files = None
    if is_zip(data):
        with open_zip(data) as z:
            names = z.namelist()
            if "export.data" not in names:
                raise ImportFormatError("the zip file holds no 1PUX export.data")
            raw = read_member(z, "export.data")
            files = _Files(data, names)
    else:
        raw = data
    try:
        doc = json.loads(decode(raw))
    except ValueError as exc:
        raise ImportFormatError(f"export.data is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("accounts"), list):
        raise ImportFormatError("export.data holds no list of accounts")
    return doc, files


def parse(data: bytes, source_password: str | None = None) -> ParseResult:
    """Every item of every vault; the vault's name and the item's tags become tags."""
    doc, files = _document(data)
    result = ParseResult(FORMAT)
    n = 0
    for account in doc["accounts"]:
        for vault in (account.get("vaults") or []) if isinstance(account, dict) else []:
            if not isinstance(vault, dict):
                continue
            vault_name = (vault.get("attrs") or {}).get("name")
            for raw in vault.get("items") or []:
                n += 1
                position = f"item {n}"
                try:
                    if not isinstance(raw, dict):
                        raise ValueError("not a JSON object")
                    title = (raw.get("overview") or {}).get("title")
                    if title:
                        position = f"item {n} ({title!r})"
                    result.items.append(_item(raw, vault_name, result, position, files))
                except (ValueError, TypeError, AttributeError) as exc:
                    result.problem(position, str(exc) or type(exc).__name__)
    unused = sorted(set(files.by_id) - files.used) if files else []
    if unused:
        result.problem("files/", f"{len(unused)} file(s) no imported item refers to: "
                                 "not imported")
    return result


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return normalise_newlines(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _item(raw: dict[str, Any], vault_name: object, result: ParseResult, position: str,
          files: _Files | None) -> ImportedItem:
    overview = raw.get("overview") or {}
    details = raw.get("details") or {}
    if not isinstance(overview, dict) or not isinstance(details, dict):
        raise ValueError("overview or details is not an object")
    category = str(raw.get("categoryUuid") or "")
    type_, type_name = CATEGORIES.get(category, ("note", f"1Password category {category}"))
    draft = ItemDraft(_text(overview.get("title")), type_)
    if type_name:
        draft.put(SOURCE_TYPE, type_name, custom=True)
    draft.tag(vault_name if isinstance(vault_name, str) else None)
    for tag in overview.get("tags") or []:
        draft.tag(_text(tag))
    if raw.get("favIndex") == 1:
        draft.tag("favorite")
    if raw.get("state") == "archived":
        draft.tag("archived")
    urls = [_text(overview.get("url"))]
    urls += [_text(u.get("url")) for u in overview.get("urls") or [] if isinstance(u, dict)]
    for url in dict.fromkeys(u for u in urls if u):
        draft.put(URL, url)
    for f in details.get("loginFields") or []:
        if not isinstance(f, dict):
            raise ValueError("a login field is not an object")
        value = _text(f.get("value"))
        designation = f.get("designation")
        if designation in ("username", "password") and not draft.has(designation):
            draft.put(designation, value, hidden=designation == PASSWORD)
        else:
            name = _text(f.get("name")) or _text(f.get("id")) or "field"
            draft.put(name, value, hidden=f.get("fieldType") == "P", custom=True)
    draft.put(PASSWORD, _text(details.get("password")), hidden=True)
    documents: list[dict[str, Any]] = []
    for section in details.get("sections") or []:
        if not isinstance(section, dict):
            raise ValueError("a section is not an object")
        for f in section.get("fields") or []:
            _section_field(draft, f, documents)
    history = [h for h in details.get("passwordHistory") or [] if isinstance(h, dict)]
    if history:
        lines = [f"{_when(h.get('time'))} {_text(h.get('value'))}".strip() for h in history]
        draft.put("password history", "\n".join(lines), hidden=True, custom=True)
    document = details.get("documentAttributes")
    if isinstance(document, dict):
        documents.insert(0, document)
    draft.put(NOTES, _text(details.get("notesPlain")))
    uuid = raw.get("uuid")
    item = draft.build(uuid if isinstance(uuid, str) else None)
    found: list[tuple[str, Callable[[], IO[bytes]]]] = []
    for doc in documents:
        name, document_id = _text(doc.get("fileName")) or "document", doc.get("documentId")
        opener = files.opener(document_id) if files and isinstance(document_id, str) else None
        if opener is None:
            where = "in files/" if files else "(import the .1pux file, which holds files/)"
            result.problem(position, f"attached file {name!r} not found {where}: not imported")
        else:
            found.append((name, opener))
    return with_files(item, found)


def _section_field(draft: ItemDraft, f: object, documents: list[dict[str, Any]]) -> None:
    if not isinstance(f, dict):
        raise ValueError("a section field is not an object")
    value = f.get("value")
    if not isinstance(value, dict) or not value:
        return
    kind, content = next(iter(value.items()))
    if kind == "file":
        if isinstance(content, dict):
            documents.append(content)
        return
    text = _value_text(kind, content)
    fid = str(f.get("id") or "")
    title = _text(f.get("title")) or fid or kind
    hidden = kind in SECRET_KINDS or kind == "sshKey"
    well_known = WELL_KNOWN.get(fid)
    if kind == "totp" and not draft.has(TOTP):
        draft.put(TOTP, text, hidden=True)
    elif well_known and not draft.has(well_known):
        draft.put(well_known, text, hidden=hidden or well_known in (NUMBER, CODE, "pin"))
    elif fid == "username" and not draft.has(USERNAME):
        draft.put(USERNAME, text)
    elif fid == "password" and not draft.has(PASSWORD):
        draft.put(PASSWORD, text, hidden=True)
    else:
        draft.put(title, text, hidden=hidden, custom=True)
    if kind == "sshKey" and isinstance(content, dict):
        meta = content.get("metadata")
        for key, v in (meta.items() if isinstance(meta, dict) else []):
            draft.put(f"{title} {key}", _text(v), custom=True)


def _value_text(kind: str, content: object) -> str:
    """One typed section value as text."""
    if kind == "monthYear" and isinstance(content, int):
        return f"{content % 100:02d}/{content // 100}"
    if kind == "date" and isinstance(content, int):
        return datetime.datetime.fromtimestamp(content, datetime.UTC).date().isoformat()
    if kind == "email" and isinstance(content, dict):
        return _text(content.get("email_address"))
    if kind == "address" and isinstance(content, dict):
        parts = [content.get(k) for k in ("street", "city", "state", "zip", "country")]
        return "\n".join(_text(p) for p in parts if p)
    if kind == "sshKey" and isinstance(content, dict):
        return _text(content.get("privateKey"))
    return _text(content)


def _when(t: object) -> str:
    """A 1Password time (seconds, sometimes milliseconds) as ISO-8601."""
    if not isinstance(t, (int, float)) or isinstance(t, bool):
        return ""
    seconds = t / 1000 if t > 10**11 else t
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="seconds")
