"""HOST:PORT parsed and written in one place, IPv6 in brackets, round trips."""

from __future__ import annotations

import pytest

from wifisync.net.address import PAIR_PATH, SYNC_PATH, format_address, parse_address, url


@pytest.mark.parametrize(("text", "parsed"), [
    ("0.0.0.0:7415", ("0.0.0.0", 7415)),
    ("[fe80::1]:1", ("fe80::1", 1)),
    ("[::1]:7415", ("::1", 7415)),
    ("nas.local:65535", ("nas.local", 65535)),
])
def test_parse_and_format_round_trip(text: str, parsed: tuple[str, int]) -> None:
    assert parse_address(text) == parsed
    assert format_address(*parsed) == text


@pytest.mark.parametrize("text", ["", ":80", "h:", "h:x", "[zz]:1", "h:70000", "h:0", "a b:1",
                                  "::1:80", "[::1]", "host", "[nas.local]:1", "h]:1"])
def test_malformed_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"HOST:PORT|port must be"):
        parse_address(text)


def test_urls_bracket_ipv6() -> None:
    assert url("https", "::1", 7415, SYNC_PATH) == "https://[::1]:7415/sync"
    assert url("wss", "192.168.1.5", 7415, PAIR_PATH) == "wss://192.168.1.5:7415/pair"
