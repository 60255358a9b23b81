"""Trash and undelete between two devices: the restore is a version like any edit."""

from __future__ import annotations

import pytest

from tests.vault.test_unlocked import Clock, exchange, identities, pair, shared_item  # noqa: F401
from wifisync.errors import ItemNotFoundError, UsageError
from wifisync.vault.unlocked import Vault


def test_undelete_supersedes_the_delete_on_every_device(
        pair: tuple[Vault, Vault, Clock, Clock]) -> None:  # noqa: F811
    a, b, _ca, _cb = pair
    item = shared_item(a, b, user="ann", password="pw")
    a.edit(item, tags=["web"])
    exchange(a, b)
    b.delete(item)
    exchange(a, b)
    assert [r.header.item for r, _s in a.trash()] == [item]
    (record, last), = b.trash()
    assert record.header.author == b.identity.device_id and last.tags == ["web"]
    restored = a.undelete(item)
    assert restored.values == {"user": "ann", "password": "pw"}
    exchange(a, b)
    for v in (a, b):
        assert v.trash() == []
        assert v.get(item).state.values == {"user": "ann", "password": "pw"}
        assert v.get(item).state.tags == ["web"] and v.get(item).conflicts == 0
    with pytest.raises(UsageError):
        a.undelete(item)  # not in the trash any more


def test_history_of_a_deleted_item_stays_readable(
        pair: tuple[Vault, Vault, Clock, Clock]) -> None:  # noqa: F811
    a, _b, _ca, _cb = pair
    item = a.add("Old", fields={"password": "x"})
    a.delete(item)
    with pytest.raises(ItemNotFoundError):
        a.get(item)
    assert [s is None for _r, s in a.history(item)] == [False, True]
