"""wifisync's own field names and the source labels that mean them."""

from __future__ import annotations

from wifisync.transfer.model import ItemDraft

#: Field names wifisync gives the well-known fields of every source.
URL, USERNAME, PASSWORD, TOTP = "url", "username", "password", "totp"
NUMBER, EXPIRY, CODE, CARDHOLDER, PIN, BRAND = (
    "number", "expiry", "code", "cardholder", "pin", "brand")
SOURCE_TYPE = "source type"

#: Well-known fields that are secret wherever they come from.
SECRET_FIELDS = frozenset({PASSWORD, TOTP, NUMBER, CODE, PIN})

#: Source labels (lower case) that name a well-known field, for every item type.
COMMON_LABELS = {
    "url": URL, "website": URL, "web site": URL, "login_uri": URL, "uri": URL,
    "username": USERNAME, "user name": USERNAME, "login name": USERNAME, "login": USERNAME,
    "login_username": USERNAME,
    "password": PASSWORD, "login_password": PASSWORD,
    "totp": TOTP, "otp": TOTP, "otpauth": TOTP, "login_totp": TOTP, "one-time password": TOTP,
    "notes": "notes", "note": "notes", "comments": "notes",
}

#: Extra labels that name a well-known field of a card.
CARD_LABELS = {
    "card number": NUMBER, "card no.": NUMBER, "number": NUMBER, "ccnum": NUMBER,
    "expiration date": EXPIRY, "expiration": EXPIRY, "expiry": EXPIRY, "expiry date": EXPIRY,
    "security code": CODE, "cvv": CODE, "cvc": CODE, "code": CODE,
    "name on card": CARDHOLDER, "cardholder": CARDHOLDER, "cardholder name": CARDHOLDER,
    "name": CARDHOLDER, "pin": PIN, "brand": BRAND, "type": BRAND,
}


def canonical(label: str, type_: str) -> str | None:
    """wifisync's name for a source label, or None when the label is a custom field."""
    key = " ".join(label.lower().split())
    if type_ == "card" and key in CARD_LABELS:
        return CARD_LABELS[key]
    if key == "pin":
        return PIN
    return COMMON_LABELS.get(key)


def put_labelled(draft: ItemDraft, label: str, value: object, hidden: bool = False) -> None:
    """Add a field by its source label: a well-known one under our name, else kept as custom."""
    name = canonical(label, draft.type)
    if name is None or (name != URL and draft.has(name)):
        draft.put(label, value, hidden=hidden, custom=True)
    else:
        draft.put(name, value, hidden=hidden or name in SECRET_FIELDS)
