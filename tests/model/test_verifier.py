"""The one signature rule and the in-process verifiers: forgeries refused, nothing unchecked."""

from __future__ import annotations

from tests.sync.helpers import household
from tests.sync.test_session import add_items
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Record
from wifisync.model.verifier import (
    InlineVerifier,
    RememberingVerifier,
    Verdicts,
    failed,
    signature_holds,
)


def forged(good: Record) -> Record:
    """``good`` with one body byte changed and its signature kept."""
    return Record.create(good.header, good.body[:-1] + bytes([good.body[-1] ^ 1]),
                         good.signature)


def signed_records(n: int) -> tuple[list[Record], bytes]:
    a, _b = household(2)
    return [a.store.heads(i)[0] for i in add_items(a, n)], a.identity.public_key


def test_the_rule_holds_for_the_author_only_and_for_exactly_what_it_signed() -> None:
    [good], key = signed_records(1)
    assert signature_holds(good, key)
    assert not signature_holds(forged(good), key)
    assert not signature_holds(good, DeviceIdentity.generate().public_key)
    assert not signature_holds(Record.create(good.header, good.body, bytes(64)), key)


def test_inline_verifier_names_the_forgery_of_a_batch() -> None:
    records, key = signed_records(5)
    records[2] = forged(records[2])
    assert failed(InlineVerifier(), [(r, key) for r in records]) == [records[2]]


def test_verdicts_check_on_the_spot_what_was_not_submitted_with_that_key() -> None:
    """A wrong answer for another key (or no answer) never makes a record count as signed."""
    [good], key = signed_records(1)
    bad = forged(good)
    other = DeviceIdentity.generate().public_key
    lying = Verdicts([(bad, key)], lambda: {bad.id: True})  # a verifier that says yes
    assert not lying.holds(bad, other)  # asked with another key: checked here
    silent = Verdicts([(bad, key)], dict)  # submitted, never answered
    assert not silent.holds(bad, key)
    assert Verdicts([], dict).holds(good, key)


class Counting:
    """A verifier that counts what it was asked to check."""

    def __init__(self) -> None:
        self.checked = 0
        self.inner = InlineVerifier()

    def submit(self, claims: list[tuple[Record, bytes]]) -> Verdicts:
        self.checked += len(claims)
        return self.inner.submit(claims)


def test_remembering_verifier_checks_each_record_once_and_remembers_failures() -> None:
    records, key = signed_records(4)
    records[1] = forged(records[1])
    counting = Counting()
    remembering = RememberingVerifier(counting)
    claims = [(r, key) for r in records]
    assert failed(remembering, claims) == [records[1]]
    assert failed(remembering, claims) == [records[1]]
    assert counting.checked == 4
    other = DeviceIdentity.generate().public_key  # another key is another question
    assert failed(remembering, [(records[0], other)]) == [records[0]]
    assert counting.checked == 5


def test_remembering_verifier_forgets_past_its_limit() -> None:
    records, key = signed_records(3)
    counting = Counting()
    remembering = RememberingVerifier(counting, limit=2)
    for r in records:
        assert failed(remembering, [(r, key)]) == []
    assert failed(remembering, [(records[0], key)]) == []
    assert counting.checked == 4  # the first was forgotten and checked again
