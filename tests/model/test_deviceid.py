"""Device IDs follow Syncthing's Luhn-base32 format, pinned by Syncthing's own vectors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wifisync.errors import WifisyncError
from wifisync.model.deviceid import (
    ALPHABET,
    DeviceIdError,
    device_id_for,
    format_device_id,
    luhn32,
    parse_device_id,
    short_device_id,
)

# From syncthing lib/protocol/deviceid_test.go.
SYNCTHING_FORMATTED = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"
SYNCTHING_RAW = bytes.fromhex("7f7c8723ecca5b4d22061c4981b34c34d865ec376be1eb74330873c9a6f9b205")


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ("AB725E4GHIQPL3ZFGT", "G"),  # syncthing lib/protocol/luhn_test.go
        ("WG2IWWALPC2HZ", "H"),  # syncspirit's luhn32 vectors, same algorithm
        ("KHQNO2S5QSILR", "K"),
        ("MFZWI3DBONSGY", "C"),
    ],
)
def test_luhn32_matches_known_check_characters(text: str, check: str) -> None:
    assert luhn32(text) == check


def test_syncthing_formatted_id_parses_to_its_bytes_and_back() -> None:
    raw = parse_device_id(SYNCTHING_FORMATTED)
    assert raw == SYNCTHING_RAW
    assert format_device_id(raw) == SYNCTHING_FORMATTED


@pytest.mark.parametrize(
    "variant",
    [
        "P56IOI7 MZJNU2Y IQGDREY DM2MGTI MGL3BXN PQ6W5BM TBBZ4TJ XZWICQ2",
        "P56IOI7MZJNU2YIQGDREYDM2MGTIMGL3BXNPQ6W5BMTBBZ4TJXZWICQ2",
        "p56ioi7mzjnu2yiqgdreydm2mgtimgl3bxnpq6w5bmtbbz4tjxzwicq2",
        "p56ioi7-mzjnu2y-iqgdrey-dm2mgti-mgl3bxn-pq6w5bm-tbbz4tj-xzwicq2",
        "  P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2\n",
    ],
)
def test_parse_tolerates_case_spaces_and_dashes(variant: str) -> None:
    assert parse_device_id(variant) == SYNCTHING_RAW


def test_short_form_is_the_first_group() -> None:
    assert short_device_id(SYNCTHING_RAW) == "P56IOI7"


def test_device_id_is_sha256_of_the_public_key() -> None:
    assert device_id_for(b"\x00" * 32).hex() == (
        "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
    )


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "a",
        # Syncthing accepts the old unchecked 52-character form; we do not.
        "P56IOI7MZJNU2IQGDREYDM2MGTMGL3BXNPQ6W5BTBBZ4TJXZWICQ",
        "P56IOI7MZJNU2IQGDREYDM2MGTMGL3BXNPQ6W5BTBBZ4TJXZWICQCCCC",
        # Syncthing's 0/1/8 typo repair is not ours either: these are not base32.
        "P561017MZJNU2YIQGDREYDM2MGTIMGL3BXNPQ6W5BMT88Z4TJXZWICQ2",
        SYNCTHING_FORMATTED + "A",
        SYNCTHING_FORMATTED.replace("-", "_"),
    ],
)
def test_malformed_ids_are_refused(bad: str) -> None:
    with pytest.raises(DeviceIdError):
        parse_device_id(bad)


@pytest.mark.parametrize("group", range(4))
def test_wrong_check_character_is_refused(group: int) -> None:
    compact = SYNCTHING_FORMATTED.replace("-", "")
    pos = group * 14 + 13
    wrong = ALPHABET[(ALPHABET.index(compact[pos]) + 1) % 32]
    with pytest.raises(DeviceIdError, match="check character"):
        parse_device_id(compact[:pos] + wrong + compact[pos + 1 :])


def test_single_changed_data_character_is_caught() -> None:
    compact = SYNCTHING_FORMATTED.replace("-", "")
    for pos in range(56):
        if pos % 14 == 13:
            continue
        for ch in ALPHABET:
            if ch == compact[pos]:
                continue
            with pytest.raises(DeviceIdError):
                parse_device_id(compact[:pos] + ch + compact[pos + 1 :])


def test_device_id_error_is_a_wifisync_error() -> None:
    assert issubclass(DeviceIdError, WifisyncError)


def test_format_refuses_wrong_length() -> None:
    with pytest.raises(ValueError):
        format_device_id(b"\x00" * 31)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_format_parse_round_trip(raw: bytes) -> None:
    text = format_device_id(raw)
    assert len(text) == 63 and text.count("-") == 7
    assert all(len(g) == 7 for g in text.split("-"))
    assert parse_device_id(text) == raw
    assert parse_device_id(text.lower().replace("-", " ")) == raw
