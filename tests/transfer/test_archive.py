"""Archives and references are read within bounds: an over-limit file is one error, no import."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.transfer import samples
from wifisync.transfer import archive, fieldrefs, importers
from wifisync.transfer.importers import kdbx
from wifisync.transfer.model import ImportFormatError

MiB = 1024 * 1024


def bomb(member: str, size: int) -> bytes:
    """A small zip whose ``member`` inflates to ``size`` bytes of JSON-looking spaces."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z, z.open(member, "w") as f:
        f.write(b"{")
        chunk = b" " * MiB
        for _ in range(size // MiB):
            f.write(chunk)
        f.write(b"}")
    return buf.getvalue()


@pytest.mark.parametrize(("member", "fmt"), [("export.data", "1pux"),
                                             ("data.json", "bitwarden-json")])
def test_a_zip_member_that_inflates_past_the_bound_is_refused_before_it_is_inflated(
        member: str, fmt: str) -> None:
    data = bomb(member, archive.MAX_DOCUMENT_BYTES + MiB)
    assert len(data) < MiB
    tracemalloc.start()
    try:
        with pytest.raises(ImportFormatError, match=f"{member} in the zip file inflates past"):
            importers.parse(data, fmt)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < archive.MAX_DOCUMENT_BYTES + 8 * MiB  # never the whole claimed size


def test_a_zip_declaring_more_entries_than_the_bound_is_refused_before_its_index_is_built(
        ) -> None:
    data = bytearray(samples.onepux([samples.ONEPUX_ITEM]))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<H", data, end + 10, 0xFFFF)  # "see the zip64 record"
    # A zip64 end record claiming ten million entries, and its locator, where the
    # central directory ends.
    record = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, 10**7, 10**7, 0, 0)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, end, 1)
    forged = bytes(data[:end]) + record + locator + bytes(data[end:])
    with pytest.raises(ImportFormatError, match="lists 10000000 entries"):
        archive.open_zip(forged)
    with pytest.raises(ImportFormatError, match="lists 10000000 entries"):
        importers.parse(forged, "1pux")


def open_sample(kdbx_bytes: bytes) -> Any:
    """A fresh copy of the sample KeePass database (its KDF is cheap), to add entries to."""
    from pykeepass import PyKeePass

    return PyKeePass(io.BytesIO(kdbx_bytes), password=samples.KDBX_PASSWORD)


def saved(kp: Any, path: Path) -> bytes:
    """The database's bytes once saved at ``path``."""
    kp.save(str(path))
    return path.read_bytes()


def test_a_keepass_reference_to_itself_is_one_error_not_a_doubling(
        kdbx_bytes: bytes, tmp_path: Path) -> None:
    kp = open_sample(kdbx_bytes)
    kp.add_entry(kp.root_group, "fine", "u", "p")
    loop = kp.add_entry(kp.root_group, "loop", "u", "x")
    ref = "{REF:P@I:" + loop.uuid.hex.upper() + "}"
    loop.password = "a" * 4000 + ref + ref  # doubles at every level (870 MiB in 7 s before)
    data = saved(kp, tmp_path / "loop.kdbx")
    tracemalloc.start()
    try:
        with pytest.raises(ImportFormatError, match="grows past 1024 KiB"):
            importers.parse(data, source_password=samples.KDBX_PASSWORD)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * MiB


def test_keepass_references_nesting_deeper_than_keepass_allows_are_refused(
        kdbx_bytes: bytes, tmp_path: Path) -> None:
    kp = open_sample(kdbx_bytes)
    previous = kp.add_entry(kp.root_group, "e0", "u", "bottom")
    chain = [previous]
    for i in range(1, fieldrefs.MAX_DEPTH + 2):
        previous = kp.add_entry(kp.root_group, f"e{i}", "u",
                                "{REF:P@I:" + previous.uuid.hex.upper() + "}")
        chain.append(previous)
    data = saved(kp, tmp_path / "deep.kdbx")
    with pytest.raises(ImportFormatError, match=f"nest deeper than {fieldrefs.MAX_DEPTH}"):
        importers.parse(data, source_password=samples.KDBX_PASSWORD)
    refs = fieldrefs.FieldReferences(kp)  # a chain within the bound resolves to the end
    assert refs.resolve(chain[fieldrefs.MAX_DEPTH].password) == "bottom"


def test_a_keepass_database_whose_xml_inflates_past_the_bound_is_refused(
        kdbx_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kp = open_sample(kdbx_bytes)
    kp.add_entry(kp.root_group, "big", "u", "p", notes="x" * (2 * MiB))
    data = saved(kp, tmp_path / "big.kdbx")
    monkeypatch.setattr(kdbx, "MAX_XML_BYTES", MiB)  # the same check, a smaller bound
    with pytest.raises(ImportFormatError, match="XML inflates past 1 MiB"):
        importers.parse(data, source_password=samples.KDBX_PASSWORD)


def test_an_over_limit_file_is_one_line_and_imports_nothing(initialised_cli: Cli,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "export.1pux"
    path.write_bytes(bomb("export.data", archive.MAX_DOCUMENT_BYTES + MiB))
    line = initialised_cli.fails("import", str(path))
    assert "export.data in the zip file inflates past 64 MiB; nothing was imported" in line
    assert initialised_cli.ok("list", "--json").strip() == "[]"


def test_a_member_opened_as_a_stream_is_read_in_pieces() -> None:
    data = bomb("files/big.bin", 8 * MiB)
    with archive.open_member(data, "files/big.bin") as stream:
        assert len(stream.read(MiB)) == MiB  # a reader takes what its own bound allows
    with pytest.raises(ImportFormatError, match="unreadable"):
        archive.open_member(data, "files/missing.bin")


@pytest.mark.parametrize(("key", "value"), [(b"M", 64 * 1024**3), (b"I", 10**6), (b"P", 10**4)])
def test_a_keepass_header_asking_for_an_absurd_kdf_cost_is_refused_before_it_runs(
        kdbx_bytes: bytes, key: bytes, value: int) -> None:
    kinds = {b"M": b"\x05", b"I": b"\x05", b"P": b"\x04"}  # UInt64, UInt64, UInt32
    size = 8 if kinds[key] == b"\x05" else 4
    entry = kinds[key] + b"\x01\x00\x00\x00" + key + size.to_bytes(4, "little")
    at = kdbx_bytes.index(entry) + len(entry)
    forged = kdbx_bytes[:at] + value.to_bytes(size, "little") + kdbx_bytes[at + size:]
    started = time.monotonic()
    with pytest.raises(ImportFormatError, match="key-derivation cost far beyond"):
        importers.parse(forged, source_password=samples.KDBX_PASSWORD)
    assert time.monotonic() - started < 2  # refused, not run (64 GiB would not even fit)
