"""Reading zip archives (Bitwarden's .zip, 1PUX) without trusting what they claim.

A few kilobytes of deflate can inflate to gigabytes, and a central directory can list
millions of entries. Every archive read goes through here: the entry count is checked
before ``zipfile`` builds its index, and a member is inflated only up to its limit.
"""

from __future__ import annotations

import io
import lzma
import struct
import zipfile
import zlib
from typing import IO

from wifisync.transfer.model import ImportFormatError

MAX_ENTRIES = 65_535  # the most a zip without zip64 can list
#: A JSON document inside an archive (10k items of a Bitwarden export are about 8 MiB).
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
_EOCD = b"PK\x05\x06"
_EOCD_SEARCH = 22 + 65_535  # the record and the longest comment
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
#: What inflating a damaged member can raise besides BadZipFile.
_INFLATE_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError,
                   NotImplementedError, RuntimeError, ValueError, KeyError)


def is_zip(data: bytes) -> bool:
    """Whether ``data`` starts like a zip archive."""
    return data.startswith(b"PK\x03\x04")


def open_zip(data: bytes) -> zipfile.ZipFile:
    """A zip archive of at most :data:`MAX_ENTRIES` entries, or :class:`ImportFormatError`."""
    entries = _declared_entries(data)
    if entries > MAX_ENTRIES:
        raise ImportFormatError(f"the zip file lists {entries} entries; at most {MAX_ENTRIES} "
                                "are read")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except _INFLATE_ERRORS as exc:
        raise ImportFormatError(f"not a readable zip file: {exc}") from exc


def read_member(archive: zipfile.ZipFile, name: str, limit: int | None = None) -> bytes:
    """One member's bytes, inflating at most ``limit`` (a JSON document's bound by default)."""
    limit = MAX_DOCUMENT_BYTES if limit is None else limit
    try:
        info = archive.getinfo(name)
        if info.file_size <= limit:
            with archive.open(info) as f:
                data = f.read(limit + 1)
            if len(data) <= limit:
                return data
    except _INFLATE_ERRORS as exc:
        raise ImportFormatError(f"{name} in the zip file is unreadable: {exc}") from exc
    raise ImportFormatError(f"{name} in the zip file inflates past {limit // (1024 * 1024)} MiB; "
                            "nothing was imported")


def open_member(data: bytes, name: str) -> IO[bytes]:
    """A stream of one member (an attachment), for a reader that bounds what it takes."""
    archive = open_zip(data)
    try:
        return archive.open(name)
    except _INFLATE_ERRORS as exc:
        archive.close()
        raise ImportFormatError(f"{name} in the zip file is unreadable: {exc}") from exc


def inflate_gzip(data: bytes, limit: int, what: str) -> bytes:
    """Gunzip ``data``, refusing (after ``limit`` bytes, not at the end) what grows past it."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ImportFormatError(f"{what} is not valid gzip: {exc}") from exc
    if len(out) > limit:
        raise ImportFormatError(f"{what} inflates past {limit // (1024 * 1024)} MiB; "
                                "nothing was imported")
    return out


def _declared_entries(data: bytes) -> int:
    """How many entries the end-of-central-directory record (or its zip64 twin) declares."""
    end = data.rfind(_EOCD, max(0, len(data) - _EOCD_SEARCH))
    if end < 0 or end + 22 > len(data):
        return 0  # not a zip: zipfile says so in its own words
    (entries,) = struct.unpack_from("<H", data, end + 10)
    locator = end - 20
    if entries == 0xFFFF and locator >= 0 and data[locator:locator + 4] == _ZIP64_LOCATOR:
        (offset,) = struct.unpack_from("<Q", data, locator + 8)
        if offset + 40 <= len(data) and data[offset:offset + 4] == _ZIP64_EOCD:
            (entries,) = struct.unpack_from("<Q", data, offset + 32)
    return int(entries)
