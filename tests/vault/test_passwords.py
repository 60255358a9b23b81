"""The generator's alphabet and bounds, the wordlist, and the strength floor."""

from __future__ import annotations

import string

import pytest

from wifisync.errors import UsageError
from wifisync.vault.passwords import (
    SYMBOLS,
    WEAK_FLOOR,
    generate,
    passphrase,
    passphrase_bits,
    strength,
    wordlist,
)


def test_wordlist_is_the_eff_large_list() -> None:
    words = wordlist()
    assert len(words) == len(set(words)) == 7776
    assert words[0] == "abacus" and words[-1] == "zoom"
    assert passphrase_bits(6) == pytest.approx(77.5, abs=0.1)


def test_generated_passwords_use_every_class_and_nothing_else() -> None:
    for _ in range(50):
        p = generate(8)
        assert len(p) == 8 and set(p) <= set(string.ascii_letters + string.digits + SYMBOLS)
        assert any(c in SYMBOLS for c in p) and any(c.isdigit() for c in p)
    assert generate(6, symbols=False).isalnum()
    assert len({generate() for _ in range(20)}) == 20
    with pytest.raises(UsageError):
        generate(3)
    with pytest.raises(UsageError):
        passphrase(0)
    assert len(passphrase(4).split("-")) >= 4


def test_strength_floor_refuses_common_passwords_and_accepts_passphrases() -> None:
    assert strength("password1").score < WEAK_FLOOR
    assert strength("hunter2").score < WEAK_FLOOR
    assert strength(passphrase(6)).score == 4
    assert "guesses" in strength("abc").describe()
