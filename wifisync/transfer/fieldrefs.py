"""KeePass field references (``{REF:P@I:<uuid>}``), resolved within bounds.

A reference names a field of another entry, whose text may hold references again.
pykeepass's own ``deref`` follows them without limit, so an entry that refers to
itself twice doubles its text at every level (870 MiB in 7 s). Here resolution stops
after :data:`MAX_DEPTH` levels (KeePass's own limit is 12) or when a value would grow
past :data:`MAX_CHARS`; either is one error for the whole file.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from wifisync.transfer.model import ImportFormatError

MAX_DEPTH = 12
MAX_CHARS = 1024 * 1024
_REF = re.compile(r"\{REF:([TUPANI])@([TUPANI]):([^}]+)\}")
_ATTRIBUTE = {"T": "title", "U": "username", "P": "password", "A": "url", "N": "notes",
              "I": "uuid"}


class FieldReferences:
    """Resolves references against one open database; each lookup is done once."""

    def __init__(self, kp: Any) -> None:
        self.kp = kp
        self.found: dict[tuple[str, str], Any] = {}

    def resolve(self, raw: str) -> str:
        """``raw`` with its references replaced; one that finds no entry keeps ``raw``."""
        value = raw
        for _level in range(MAX_DEPTH):
            refs = set(_REF.findall(value))
            if not refs:
                return value
            for wanted, search_in, search_value in sorted(refs):
                text = self._field(wanted, search_in, search_value)
                if text is None:
                    return raw  # as pykeepass and KeePass do: shown as written
                ref = f"{{REF:{wanted}@{search_in}:{search_value}}}"
                grown = len(value) + value.count(ref) * (len(text) - len(ref))
                if grown > MAX_CHARS:
                    raise ImportFormatError(
                        f"a KeePass field reference grows past {MAX_CHARS // 1024} KiB "
                        "(a reference to itself?); nothing was imported")
                value = value.replace(ref, text)
        if _REF.search(value):
            raise ImportFormatError(f"KeePass field references nest deeper than {MAX_DEPTH} "
                                    "levels (a reference to itself?); nothing was imported")
        return value

    def _field(self, wanted: str, search_in: str, search_value: str) -> str | None:
        key = (search_in, search_value)
        if key not in self.found:
            attribute = _ATTRIBUTE[search_in]
            needle: Any = search_value
            if attribute == "uuid":
                try:
                    needle = uuid.UUID(search_value)
                except ValueError:
                    return None
            self.found[key] = self.kp.find_entries(first=True, **{attribute: needle})
        entry = self.found[key]
        if entry is None:
            return None
        text = getattr(entry, _ATTRIBUTE[wanted])
        if isinstance(text, uuid.UUID):
            return text.hex.upper()
        return text if isinstance(text, str) else ""
