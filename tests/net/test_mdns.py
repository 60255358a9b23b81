"""The members' mDNS tag: a known answer, unlinkable across windows and vaults, rollover slack."""

from __future__ import annotations

import time

from wifisync.net.mdns import TAG_WINDOW_SECONDS, is_member_tag, mdns_tag, tag_window

VAULT = bytes(range(16))
OTHER_VAULT = bytes(range(1, 17))


def test_tag_known_answer() -> None:
    assert mdns_tag(VAULT, 0) == b"5bde268b1dfb8f554eb22464cf48f76d"
    assert mdns_tag(VAULT, 493000) == b"c37ed386a4c2da741cb1cc5cd61484b9"


def test_tag_changes_with_each_window_so_hours_cannot_be_linked() -> None:
    tags = {mdns_tag(VAULT, w) for w in range(100)}
    assert len(tags) == 100


def test_tag_of_previous_window_is_accepted_after_rollover() -> None:
    boundary = 493001 * TAG_WINDOW_SECONDS
    assert tag_window(boundary - 0.5) == 493000
    old_tag = mdns_tag(VAULT, 493000)
    assert is_member_tag(VAULT, old_tag, boundary - 0.5)
    assert is_member_tag(VAULT, old_tag, boundary + 0.5)
    assert is_member_tag(VAULT, old_tag, boundary + TAG_WINDOW_SECONDS - 1)
    # Two windows later the old tag is dead.
    assert not is_member_tag(VAULT, old_tag, boundary + TAG_WINDOW_SECONDS)


def test_tag_of_next_window_is_accepted_for_a_slow_clock() -> None:
    now = 493000 * TAG_WINDOW_SECONDS + 10
    assert is_member_tag(VAULT, mdns_tag(VAULT, 493001), now)
    assert not is_member_tag(VAULT, mdns_tag(VAULT, 493002), now)


def test_another_vault_has_another_tag_and_is_refused() -> None:
    now = time.time()
    theirs = mdns_tag(OTHER_VAULT, tag_window(now))
    assert theirs != mdns_tag(VAULT, tag_window(now))
    assert not is_member_tag(VAULT, theirs, now)
    assert not is_member_tag(VAULT, b"", now)
