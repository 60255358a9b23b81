"""mSecure CSV: layout B (mSecure 6, ``label|type|value`` cells), layout A (3.5/5, positional)."""

from __future__ import annotations

import re

from wifisync.transfer.fields import PASSWORD, SECRET_FIELDS, SOURCE_TYPE, canonical, put_labelled
from wifisync.transfer.model import NOTES, ImportedItem, ItemDraft, ParseResult
from wifisync.transfer.text import csv_rows, decode, line_ends, normalise_newlines

FORMAT = "msecure-csv"
FAMILY = "msecure"
MARKER_B = "mSecure6 CSV export file"
MARKER_A = "mSecure CSV export file"

#: Template (type) names, lower case, and the wifisync type they become.
TYPES = {
    "login": "login", "web logins": "login", "email account": "login",
    "email accounts": "login", "frequent flyer": "login",
    "credit card": "card", "credit cards": "card",
    "secure note": "note", "note": "note",
    "identity": "identity", "passport": "identity", "social security": "identity",
    "driver's license": "identity", "drivers license": "identity",
}
#: Template names that are exactly one of our types (no need to keep the name).
PLAIN_TYPES = frozenset({"login", "web logins", "credit card", "credit cards", "secure note",
                         "note", "identity"})

#: Layout A: the labels of each type's value columns, by position (v5 names, then v3 names).
POSITIONAL = {
    "login": ("URL", "Username", "Password"),
    "credit card": ("Card No.", "Expiration Date", "Security Code", "Name", "PIN", "Bank",
                    "Phone Number", "Billing Address"),
    "bank account": ("Account Number", "PIN", "Name", "Branch", "Routing Number",
                     "Account Type", "Phone No."),
    "email account": ("Username", "Password", "Incoming Mail Server", "Incoming Port",
                      "Outgoing Mail Server", "Outgoing Port", "POP3 Host", "SMTP Host"),
    "membership": ("Account Number", "Name", "Start Date", "Expiration Date"),
    "insurance info": ("Policy No.", "Group No.", "Name", "Date", "Phone No."),
    "calling card": ("Access No.", "PIN"),
    "combination": ("Code",),
    "secure note": (),
    "web logins": ("URL", "Username", "Password"),
    "credit cards": ("Card No.", "Expiration Date", "Name", "PIN", "Bank", "Security Code"),
    "bank accounts": ("Account Number", "PIN", "Name", "Branch", "Phone No."),
    "email accounts": ("Username", "Password", "POP3 Host", "SMTP Host"),
    "frequent flyer": ("Number", "URL", "Username", "Password", "Mileage"),
    "identity": ("First Name", "Last Name", "Nick Name", "Company", "Title", "Address",
                 "Address2", "City", "State", "Country", "Zip", "Home Phone", "Office Phone",
                 "Mobile Phone", "Email", "Email2", "Skype", "Website"),
    "insurance": ("Policy No.", "Group No.", "Name", "Date", "Phone No."),
    "memberships": ("Account Number", "Name", "Date"),
    "note": (),
    "passport": ("Name", "Number", "Type", "Issuing Country", "Issuing Authority",
                 "Nationality", "Expiration", "Place of Birth"),
    "social security": ("Name", "Number"),
    "birthdays": ("Date",),
    "calling cards": ("Access No.", "PIN"),
    "clothes size": ("Shirt Size", "Pant Size", "Shoe Size", "Dress Size"),
    "combinations": ("Code",),
    "prescriptions": ("RX Number", "Name", "Doctor", "Pharmacy", "Phone No."),
    "registration codes": ("Number", "Date"),
    "vehicle info": ("License No.", "VIN", "Date Purchased", "Tire Size"),
    "voice mail": ("Access No.", "PIN"),
}

#: Field type codes of layout B that mark a secret (password, PIN/security code).
SECRET_CODES = frozenset({"8", "9"})
TRIPLE = re.compile(r"^[^|]*\|\d*\|", re.DOTALL)


def sniff(data: bytes) -> bool:
    """The marker line, or (Windows, no marker) rows that look like mSecure's."""
    text = decode(data[:65536]).lstrip()
    first = text.split("\n", 1)[0].strip()
    if first in (MARKER_A, MARKER_B):
        return True
    for _line, row in _safe_rows(text):
        if len(row) >= 4 and row[1].strip().lower() in POSITIONAL:
            return True
        return bool(len(row) >= 5 and "|" in row[0] and TRIPLE.match(row[4]))
    return False


def _safe_rows(text: str) -> list[tuple[int, list[str]]]:
    """The first few non-empty rows, or none when the text is not CSV at all."""
    rows: list[tuple[int, list[str]]] = []
    try:
        for line, row in csv_rows(text):
            if any(row):
                rows.append((line, row))
            if len(rows) == 3:
                break
    except Exception:
        return []
    return rows


def parse(data: bytes, source_password: str | None = None) -> ParseResult:
    """Every row of an mSecure CSV export."""
    text = line_ends(decode(data))
    result = ParseResult(FORMAT)
    first, _, rest = text.partition("\n")
    skip = 0
    if first.strip() == MARKER_B:
        layout, skip = "B", 1
    elif first.strip() == MARKER_A:
        layout, skip = "A", 1
    else:
        layout = _guess_layout(text)
    if skip:
        text = rest
    for line, row in csv_rows(text):
        line += skip
        row = [normalise_newlines(c) for c in row]
        if layout == "A":  # mSecure 3.5 for Windows wrote \" for a quote
            row = [c.replace('\\"', '"') for c in row]
        while row and row[-1] == "":
            row.pop()
        if not row:
            continue
        try:
            item = _row_b(row) if layout == "B" else _row_a(row)
        except ValueError as exc:
            result.problem(f"line {line}", str(exc))
            continue
        result.items.append(item)
    return result


def _guess_layout(text: str) -> str:
    for _line, row in _safe_rows(text):
        if len(row) >= 4 and row[1].strip().lower() in POSITIONAL and "|" not in row[0]:
            return "A"
        return "B"
    return "B"


def _kind(template: str, draft_title: str) -> ItemDraft:
    key = template.strip().lower()
    draft = ItemDraft(draft_title, TYPES.get(key, "note"))
    if key not in PLAIN_TYPES and template.strip():
        draft.put(SOURCE_TYPE, template.strip(), custom=True)
    return draft


def _note(raw: str) -> str:
    """A note with mSecure's literal ``\\n`` escapes turned into line breaks."""
    return raw.replace("\\n", "\n")


def _row_b(row: list[str]) -> ImportedItem:
    if len(row) < 2:
        raise ValueError("row has no template name (needs at least title and template)")
    title, record_id = row[0], None
    head, sep, tail = row[0].rpartition("|")
    if sep and tail.strip().isdigit():
        title, record_id = head, tail.strip()
    draft = _kind(row[1], title)
    if len(row) > 2:
        for tag in row[2].split(";"):
            if tag.strip() != "Unassigned":
                draft.tag(tag)
    notes = _note(row[3]) if len(row) > 3 else ""
    for n, cell in enumerate(row[4:], start=5):
        parts = cell.split("|", 2)
        if len(parts) == 3:
            label, code, value = parts
            hidden = code.strip() in SECRET_CODES
        else:
            label, value, hidden = f"field {n}", cell, False
        put_labelled(draft, label.strip() or f"field {n}", value, hidden=hidden)
    draft.put(NOTES, notes)
    return draft.build(record_id)


def _row_a(row: list[str]) -> ImportedItem:
    if len(row) < 3:
        raise ValueError("row has fewer than the 4 columns Group, Type, Description, Notes")
    group, template, title = row[0], row[1], row[2]
    notes = row[3] if len(row) > 3 else ""
    values = [_unquote(v) for v in row[4:]]
    draft = _kind(template, _unquote(title))
    if group.strip() != "Unassigned":
        draft.tag(group)
    labels = POSITIONAL.get(template.strip().lower())
    if labels is None:
        for n, value in enumerate(values, start=1):
            draft.put(f"field {n}", value, custom=True)
    else:
        for n, value in enumerate(values):
            label = labels[n] if n < len(labels) else f"field {n + 1}"
            name = canonical(label, draft.type)
            put_labelled(draft, label, value, hidden=name in SECRET_FIELDS or name == PASSWORD)
    draft.put(NOTES, _unquote(_note(notes)))
    return draft.build()


def _unquote(value: str) -> str:
    """mSecure 5 wrote ASCII double quotes as curly ones; give them back."""
    return value.replace("\u201c", '"').replace("\u201d", '"')
