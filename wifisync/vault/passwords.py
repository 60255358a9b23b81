"""New random passwords and passphrases, and how strong a chosen master password is."""

from __future__ import annotations

import math
import secrets
import string
from dataclasses import dataclass
from functools import cache
from importlib import resources

from wifisync.errors import UsageError

SYMBOLS = "!#$%&()*+,-./:;<=>?@[]^_{|}~"  # no quotes, backslash, backtick or space
DEFAULT_LENGTH = 20
MIN_LENGTH, MAX_LENGTH = 4, 1024
MIN_WORDS, MAX_WORDS = 1, 64
WORD_SEPARATOR = "-"
WORDLIST = "eff_large_wordlist.txt"
#: zxcvbn score below which a new master password needs ``--allow-weak`` (3 = "safely
#: unguessable": about 10^8 guesses, months of Argon2id on one machine).
WEAK_FLOOR = 3
STRONG = 4


@cache
def wordlist() -> tuple[str, ...]:
    """The EFF large wordlist (7776 words) shipped in ``wifisync/data``."""
    text = resources.files("wifisync.data").joinpath(WORDLIST).read_text("utf-8")
    words = tuple(w.strip() for w in text.splitlines() if w.strip())
    assert len(set(words)) >= 7776, "the wordlist shipped with wifisync is incomplete"
    return words


def generate(length: int = DEFAULT_LENGTH, symbols: bool = True) -> str:
    """A random password with at least one lower, upper case letter, digit (and symbol)."""
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise UsageError(f"--length: expected {MIN_LENGTH} to {MAX_LENGTH}, got {length}")
    classes = [string.ascii_lowercase, string.ascii_uppercase, string.digits]
    if symbols:
        classes.append(SYMBOLS)
    alphabet = "".join(classes)
    while True:  # uniform over the passwords that use every class
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        if all(any(c in cls for c in password) for cls in classes):
            return password


def passphrase(words: int) -> str:
    """``words`` words drawn uniformly from the EFF large wordlist, joined by dashes."""
    if not MIN_WORDS <= words <= MAX_WORDS:
        raise UsageError(f"--words: expected {MIN_WORDS} to {MAX_WORDS}, got {words}")
    pool = wordlist()
    return WORD_SEPARATOR.join(secrets.choice(pool) for _ in range(words))


def passphrase_bits(words: int) -> float:
    """Entropy of :func:`passphrase` in bits."""
    return words * math.log2(len(wordlist()))


@dataclass(frozen=True, slots=True)
class Strength:
    """zxcvbn's estimate: score 0-4 and about how many guesses it takes."""

    score: int
    guesses_log10: float
    warning: str

    @property
    def label(self) -> str:
        """A word for the score."""
        return ("very weak", "weak", "fair", "good", "strong")[self.score]

    def describe(self) -> str:
        """One line for the user."""
        hint = f"; {self.warning.rstrip('.')}" if self.warning else ""
        return (f"password strength: {self.label} (about 10^{self.guesses_log10:.0f} "
                f"guesses{hint})")


def strength(password: str) -> Strength:
    """Estimate a password's strength with zxcvbn (dictionaries, names, keyboard patterns)."""
    from zxcvbn import zxcvbn  # imported only by init and passwd

    result = zxcvbn(password[:256])  # zxcvbn is slow on long inputs; 256 is plenty
    warning = str(result.get("feedback", {}).get("warning") or "")
    return Strength(int(result["score"]), float(result["guesses_log10"]), warning)
