"""KeePass 2 databases (``.kdbx``, KDBX 3 and 4) read with pykeepass."""

from __future__ import annotations

import io
from typing import Any

from ..fields import PASSWORD, TOTP, URL, USERNAME
from ..model import (
    NOTES,
    ImportedItem,
    ImportFormatError,
    ItemDraft,
    ParseResult,
    SourcePasswordError,
)
from ..text import normalise_newlines

FORMAT = "kdbx"
FAMILY = "keepass"
MAGIC = b"\x03\xd9\xa2\x9a"
#: Extra URLs KeePassXC and KeePass2Android keep as attributes.
URL_ATTRIBUTE = "KP2A_URL"


def sniff(data: bytes) -> bool:
    """KeePass's magic bytes."""
    return data.startswith(MAGIC)


def parse(data: bytes, source_password: str | None = None) -> ParseResult:
    """Every entry outside the recycle bin; groups become path tags, custom strings fields."""
    from pykeepass import PyKeePass
    from pykeepass.exceptions import CredentialsError

    if source_password is None:
        raise SourcePasswordError("the KeePass file needs its own password "
                                  "(--source-password-file FILE, or run on a terminal)")
    try:
        kp = PyKeePass(io.BytesIO(data), password=source_password)
    except CredentialsError as exc:
        raise SourcePasswordError("wrong password for the KeePass file") from exc
    except Exception as exc:  # pykeepass/construct raise many unrelated types for bad files
        raise ImportFormatError(f"not a readable KeePass database: {exc}") from exc
    result = ParseResult(FORMAT)
    bin_group = kp.recyclebin_group
    for n, entry in enumerate(kp.entries, start=1):
        position = f"entry {n}"
        try:
            if bin_group is not None and _inside(entry.group, bin_group):
                continue
            position = f"entry {'/'.join(p or '' for p in entry.path)!r}"
            result.items.append(_item(kp, entry))
        except Exception as exc:  # one broken entry must not stop the others
            result.problem(position, f"unreadable entry: {exc}")
            continue
        for a in entry.attachments:
            result.problem(position, f"attachment {a.filename!r} not imported "
                                     "(wifisync holds no files)")
    return result


def _inside(group: Any, ancestor: Any) -> bool:
    while group is not None:
        if group.uuid == ancestor.uuid:
            return True
        group = group.parentgroup
    return False


def _value(kp: Any, raw: str | None) -> str:
    """A field's text with KeePass field references (``{REF:...}``) resolved."""
    if not raw:
        return ""
    if "{REF:" in raw:
        try:
            resolved = kp.deref(raw)
            if isinstance(resolved, str):
                raw = resolved
        except Exception:
            pass  # an unresolvable reference is kept as written
    return normalise_newlines(raw)


def _item(kp: Any, entry: Any) -> ImportedItem:
    draft = ItemDraft(_value(kp, entry.title), "login")
    group_path = [g for g in (entry.group.path or []) if g]
    draft.tag("/".join(group_path) if group_path else None)
    for tag in entry.tags or []:
        draft.tag(tag)
    draft.put(USERNAME, _value(kp, entry.username))
    draft.put(PASSWORD, _value(kp, entry.password), hidden=True)
    draft.put(URL, _value(kp, entry.url))
    draft.put(TOTP, _value(kp, entry.otp), hidden=True)
    props = entry.custom_properties
    for key in sorted(k for k in props if k == URL_ATTRIBUTE or k.startswith(URL_ATTRIBUTE + "_")):
        draft.put(URL, _value(kp, props[key]))
    for key, raw in props.items():
        if key == URL_ATTRIBUTE or key.startswith(URL_ATTRIBUTE + "_"):
            continue
        draft.put(key, _value(kp, raw), hidden=bool(entry.is_custom_property_protected(key)),
                  custom=True)
    if entry.expires and entry.expiry_time is not None:
        draft.put("expires", entry.expiry_time.isoformat(), custom=True)
    draft.put(NOTES, _value(kp, entry.notes))
    if not any(draft.has(n) for n in (USERNAME, PASSWORD, URL, TOTP)):
        draft.type = "note"
    return draft.build(entry.uuid.hex if entry.uuid else None)
