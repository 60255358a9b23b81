"""The one writer of MEMBER records refuses what the membership policy forbids, writing nothing."""

from __future__ import annotations

import pytest

from tests.sync.helpers import household, identity
from wifisync.errors import PairingError, UsageError
from wifisync.model.membership import named_devices
from wifisync.vault.members import AlreadyRevokedError, admit, grant, revoke


def test_a_revoked_device_cannot_be_admitted_again() -> None:
    a, b = household(2)
    revoke(a.vault.author, named_devices(a.store)[b.id])
    before = a.store.count_records()
    with pytest.raises(PairingError, match="removed from the vault"):
        admit(a.vault.author, b.identity.cert_der, "again", "member")
    assert a.store.count_records() == before
    newcomer = identity(7)
    admit(a.vault.author, newcomer.cert_der, "new", "member")
    assert named_devices(a.store)[newcomer.device_id].current


def test_only_a_key_holder_grants_and_only_to_a_current_member() -> None:
    a, relay = household(2, relays=frozenset({1}))
    with pytest.raises(UsageError, match="holds the key"):
        grant(relay.vault.author, named_devices(relay.store)[relay.id])
    assert grant(a.vault.author, named_devices(a.store)[relay.id])
    assert named_devices(a.store)[relay.id].holds_key
    assert not grant(a.vault.author, named_devices(a.store)[relay.id])  # nothing more to grant
    revoke(a.vault.author, named_devices(a.store)[relay.id])
    with pytest.raises(UsageError, match="not a current member"):
        grant(a.vault.author, named_devices(a.store)[relay.id])


def test_a_device_cannot_revoke_itself_nor_twice() -> None:
    a, b = household(2)
    before = a.store.count_records()
    with pytest.raises(UsageError, match="cannot revoke itself"):
        revoke(a.vault.author, named_devices(a.store)[a.id])
    assert a.store.count_records() == before
    revoke(a.vault.author, named_devices(a.store)[b.id])
    after = a.store.count_records()
    with pytest.raises(AlreadyRevokedError):
        revoke(a.vault.author, named_devices(a.store)[b.id])
    assert a.store.count_records() == after
