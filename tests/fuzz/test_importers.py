"""Every importer under mutated valid files: our errors only (ImportFormatError and kin)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.mutate import FUZZ, MiB, mutated, only_our_errors
from tests.transfer import samples
from wifisync.transfer import importers

WIFISYNC_JSON = json.dumps({"format": "wifisync-json", "version": 1, "items": [
    {"title": "Home router", "type": "login", "tags": ["lan"],
     "fields": [{"name": "password", "value": "hunter2", "hidden": True}],
     "source": "wifisync:1"}]}).encode()


def _zip(name: str, content: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, content)
        z.writestr("attachments/i1/a.txt" if name == "data.json" else "files/a.txt", b"x")
    return buf.getvalue()


BITWARDEN = json.dumps(samples.BITWARDEN_JSON).encode()
ONEPUX = json.dumps({"accounts": [{"attrs": {"accountName": "Ada", "uuid": "A1"}, "vaults": [
    {"attrs": {"uuid": "V1", "name": "Personal"},
     "items": [samples.ONEPUX_ITEM, samples.ONEPUX_CARD]}]}]}).encode()
SEEDS: dict[str, list[bytes]] = {
    "msecure-csv": [samples.MSECURE_B.encode(), samples.MSECURE_A_MAC.encode()],
    "bitwarden-json": [BITWARDEN, _zip("data.json", BITWARDEN)],
    "bitwarden-csv": [samples.BITWARDEN_CSV.encode()],
    "1password-csv": [samples.ONEPASSWORD_CSV.encode()],
    "1pux": [samples.onepux([samples.ONEPUX_ITEM, samples.ONEPUX_CARD])],
    "keepassxc-csv": [samples.KEEPASSXC_CSV.encode()],
    "wifisync-json": [WIFISYNC_JSON],
}
#: The JSON inside each archive format, mutated and then zipped (a zip's CRC would
#: otherwise stop nearly every mutation of its content at the archive layer).
ARCHIVED: dict[str, tuple[str, bytes]] = {"bitwarden-json": ("data.json", BITWARDEN),
                                          "1pux": ("export.data", ONEPUX)}


def _parse_both_ways(data: bytes, fmt: str) -> None:
    only_our_errors(lambda: importers.parse(data, fmt), 64 * MiB)
    only_our_errors(lambda: importers.parse(data), 64 * MiB)


@pytest.mark.parametrize("fmt", sorted(SEEDS))
@FUZZ
@given(data=st.data())
def test_every_importer_on_mutated_files(fmt: str, data: st.DataObject) -> None:
    _parse_both_ways(data.draw(mutated(SEEDS[fmt])), fmt)


@pytest.mark.parametrize("fmt", sorted(ARCHIVED))
@FUZZ
@given(data=st.data())
def test_archive_importers_on_mutated_content(fmt: str, data: st.DataObject) -> None:
    name, content = ARCHIVED[fmt]
    _parse_both_ways(_zip(name, data.draw(mutated([content]))), fmt)


@pytest.fixture(scope="module")
def kdbx_seed(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, int]:
    """A KeePass file with a cheap KDF, and where its header (kept intact) ends."""
    data = samples.kdbx(tmp_path_factory.mktemp("fuzz") / "seed.kdbx").read_bytes()
    pos = 12  # signature and version, then type-length-value fields up to type 0
    while data[pos] != 0:
        pos += 5 + int.from_bytes(data[pos + 1:pos + 5], "little")
    return data, pos + 5 + 4 + 64  # end field, then the header's SHA-256 and HMAC


def test_the_keepass_importer_on_mutated_files(kdbx_seed: tuple[bytes, int]) -> None:
    seed, header_end = kdbx_seed

    # The header is kept: its KDF parameters are the source file's own cost (the user
    # opens a file they chose, with its password); everything after it is mutated.
    @FUZZ
    @given(mutated([seed], keep=header_end))
    def run(data: bytes) -> None:
        only_our_errors(lambda: importers.parse(data, "kdbx", samples.KDBX_PASSWORD), 64 * MiB)

    run()


def test_the_seeds_themselves_import(kdbx_seed: tuple[bytes, int], tmp_path: Path) -> None:
    """A fuzz run is only as good as its seeds: each is a valid file of its format."""
    for fmt, seeds in SEEDS.items():
        for seed in seeds:
            assert importers.parse(seed, fmt).items, fmt
    assert importers.parse(kdbx_seed[0], "kdbx", samples.KDBX_PASSWORD).items
