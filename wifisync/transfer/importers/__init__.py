"""One module per source format; each has ``FORMAT``, ``FAMILY``, ``sniff`` and ``parse``."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from wifisync.transfer.importers import (
    bitwarden_csv,
    bitwarden_json,
    kdbx,
    keepassxc_csv,
    msecure_csv,
    onepassword_csv,
    onepux,
    wifisync_csv,
    wifisync_json,
)
from wifisync.transfer.model import ImportFormatError, ParseResult

#: Checked in this order when detecting: the most specific signatures first.
IMPORTERS: tuple[ModuleType, ...] = (
    kdbx, wifisync_json, wifisync_csv, onepux, bitwarden_json, bitwarden_csv, keepassxc_csv,
    onepassword_csv, msecure_csv,
)
FORMATS = {m.FORMAT: m for m in IMPORTERS}
#: The order formats are listed to users.
FORMAT_NAMES = ("msecure-csv", "bitwarden-json", "bitwarden-csv", "1password-csv", "1pux",
                "kdbx", "keepassxc-csv", "wifisync-json", "wifisync-csv")


def importer(format_name: str | None, data: bytes) -> ModuleType:
    """The importer for a named format, or the one whose signature the content shows."""
    if format_name is not None:
        try:
            return FORMATS[format_name]
        except KeyError:
            raise ImportFormatError(
                f"unknown format {format_name!r} (known: {', '.join(FORMAT_NAMES)})") from None
    if not data.strip():
        raise ImportFormatError("the file is empty")
    for module in IMPORTERS:
        if module.sniff(data):
            return module
    raise ImportFormatError(
        "cannot tell which export format this file is; pass --format with one of: "
        + ", ".join(FORMAT_NAMES))


def parse(data: bytes, format_name: str | None = None, source_password: str | None = None,
          path: Path | None = None) -> ParseResult:
    """Parse a file's bytes into neutral items and problems (no vault access).

    ``path`` is where the file was read from: formats whose attachments travel in a
    folder beside the file (``READS_BESIDE``) look for them there.
    """
    module = importer(format_name, data)
    if getattr(module, "READS_BESIDE", False):
        beside: ParseResult = module.parse(data, source_password, path=path)
        return beside
    result: ParseResult = module.parse(data, source_password)
    return result
