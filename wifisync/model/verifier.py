"""The one signature rule, and the interface every signature check of a record goes through.

A record holds when its author's Ed25519 key signed exactly its header and body, alone or
as a leaf of a record tree (:func:`signature_holds`); every device applies this rule, and
only this rule, to every record, whether it arrives by sync, pairing or a backup, or is
read back from the store.
How the checks run (on the spot, on threads, in helper processes) is the business of
whoever owns a :class:`Verifier` and injects it: the core starts no thread or process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from wifisync.errors import IntegrityError
from wifisync.model.identity import verify_signature
from wifisync.model.records import Record

#: A record with the public key that must have signed it.
Claim = tuple[Record, bytes]


def signature_holds(record: Record, key: bytes) -> bool:
    """Whether ``key`` signed exactly ``record``'s header and body (alone, or as a leaf of
    the record tree its proof leads to): the rule."""
    try:
        verify_signature(key, record.signature, record.signed_message())
    except IntegrityError:
        return False
    return True


def check_claims(claims: Sequence[Claim]) -> list[tuple[bytes, bool]]:
    """(record ID, whether it holds) for each claim, checked in this thread; a record
    tree's signature is checked once."""
    trees: dict[tuple[bytes, bytes, bytes], bool] = {}
    out: list[tuple[bytes, bool]] = []
    for r, k in claims:
        if not r.proof:
            out.append((r.id, signature_holds(r, k)))
            continue
        try:
            tree = (k, r.signature, r.signed_message())
        except IntegrityError:
            out.append((r.id, False))
            continue
        if tree not in trees:
            trees[tree] = signature_holds(r, k)
        out.append((r.id, trees[tree]))
    return out


class Verdicts:
    """Which signatures of a submitted batch hold; the answers are awaited on first use.

    A record asked about with another key than it was submitted with (or not submitted
    at all) is checked on the spot: no record is ever taken as signed without a check.
    """

    def __init__(self, claims: Sequence[Claim],
                 answers: Callable[[], Mapping[bytes, bool]]) -> None:
        self._keys = {r.id: k for r, k in claims}
        self._answers: Callable[[], Mapping[bytes, bool]] | None = answers
        self._results: Mapping[bytes, bool] = {}

    def holds(self, record: Record, key: bytes) -> bool:
        """Whether ``key`` signed ``record``."""
        if self._answers is not None:
            answers, self._answers = self._answers, None
            self._results = answers()
        if self._keys.get(record.id) != key or record.id not in self._results:
            return signature_holds(record, key)
        return self._results[record.id]


class Verifier(Protocol):
    """Checks the signatures of a batch of records against the keys that must have signed."""

    def submit(self, claims: Sequence[Claim]) -> Verdicts:
        """Start checking ``claims``; the verdicts may be awaited later (overlap with work)."""
        ...


class InlineVerifier:
    """The plain implementation: every check on the spot, in the caller's thread."""

    def submit(self, claims: Sequence[Claim]) -> Verdicts:
        """Check ``claims`` now."""
        results = dict(check_claims(claims))
        return Verdicts(claims, lambda: results)


class RememberingVerifier:
    """Wraps a verifier and remembers its verdicts (a record ID covers its signature).

    For the few records read again and again, such as MEMBER records each time the
    membership is recomputed. Bounded: forgets everything past ``limit`` entries.
    """

    def __init__(self, inner: Verifier, limit: int = 1 << 16) -> None:
        self._inner = inner
        self._limit = limit
        self._known: dict[tuple[bytes, bytes], bool] = {}

    def submit(self, claims: Sequence[Claim]) -> Verdicts:
        """Check what is not remembered; remember the answers."""
        known = self._known
        fresh = [(r, k) for r, k in claims if (r.id, k) not in known]
        verdicts = self._inner.submit(fresh) if fresh else None

        def answers() -> dict[bytes, bool]:
            if verdicts is not None:
                if len(known) + len(fresh) > self._limit:
                    known.clear()
                for r, k in fresh:
                    known[(r.id, k)] = verdicts.holds(r, k)
            return {r.id: known[(r.id, k)] if (r.id, k) in known else signature_holds(r, k)
                    for r, k in claims}

        return Verdicts(claims, answers)


def failed(verifier: Verifier, claims: Sequence[Claim]) -> list[Record]:
    """The records of ``claims`` whose signature does not hold, in order."""
    verdicts = verifier.submit(claims)
    return [r for r, k in claims if not verdicts.holds(r, k)]
