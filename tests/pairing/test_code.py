"""Pairing codes: the word list, generation and forgiving but strict parsing."""

from __future__ import annotations

import math

import pytest

from wifisync.errors import UsageError
from wifisync.pairing.code import NAMEPLATES, SECRET_BITS, WORDS, PairingCode


def test_word_list_is_256_distinct_plain_words() -> None:
    assert len(WORDS) == 256 == len(set(WORDS))
    assert all(w.isalpha() and w.islower() for w in WORDS)
    assert SECRET_BITS == 2 * math.log2(len(WORDS)) == 16


def test_generated_code_parses_back_to_itself() -> None:
    for _ in range(50):
        code = PairingCode.generate()
        assert PairingCode.parse(str(code)) == code
        assert code.nameplate in NAMEPLATES and len(code.words) == 2


def test_parse_forgives_case_and_spaces() -> None:
    assert PairingCode.parse("  42 Maple-VIOLIN ") == PairingCode(42, ("maple", "violin"))


@pytest.mark.parametrize("text", ["42-maple", "42-maple-violin-tiger", "x-maple-violin",
                                  "0-maple-violin", "100-maple-violin", "42-mapel-violin", ""])
def test_parse_refuses_what_is_not_a_code(text: str) -> None:
    with pytest.raises(UsageError):
        PairingCode.parse(text)


def test_generate_avoids_nameplates_in_use() -> None:
    taken = set(NAMEPLATES) - {7}
    assert {PairingCode.generate(taken).nameplate for _ in range(20)} == {7}
    with pytest.raises(UsageError):
        PairingCode.generate(set(NAMEPLATES))


def test_password_covers_the_whole_code() -> None:
    a, b = PairingCode(1, ("maple", "violin")), PairingCode(2, ("maple", "violin"))
    assert a.password == b"1-maple-violin" and a.password != b.password
