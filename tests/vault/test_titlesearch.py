"""Title tags: one keyed hash per item version, the same however many are computed at once."""

from __future__ import annotations

import hashlib

from wifisync.vault.titlesearch import TAG_BYTES, title_tag, title_tagger

KEY = bytes(range(32))


def test_a_tag_is_keyed_blake2b_of_record_id_and_casefolded_title() -> None:
    record_id = b"\x07" * 32
    expected = hashlib.blake2b(record_id + b"strasse router", digest_size=TAG_BYTES,
                               key=KEY, person=b"wifisync-titletg").digest()
    assert title_tag(KEY, record_id, "STRASSE Router") == expected
    assert title_tag(KEY, record_id, "Straße ROUTER") == expected  # casefold, not lower()
    assert title_tag(KEY, b"\x08" * 32, "strasse router") != expected


def test_the_tagger_of_a_title_makes_the_tags_title_tag_makes() -> None:
    ids = [bytes([n]) * 32 for n in range(50)]
    for title in ("Router", "router", "ΣΊΣΥΦΟΣ", "", "a" * 300):
        tagger = title_tagger(KEY, title)
        assert [tagger(i) for i in ids] == [title_tag(KEY, i, title) for i in ids]
    assert title_tagger(KEY, "x")(ids[0]) != title_tagger(bytes(32), "x")(ids[0])
