"""The mass-deletion brake's rule, and the receiving side's one line per large delete."""

from __future__ import annotations

from pathlib import Path

from wifisync.model.crypto import KdfParams
from wifisync.model.identity import DeviceIdentity
from wifisync.store.sqlite import SqliteStore
from wifisync.vault import deletebrake
from wifisync.vault.deletebrake import BrakeRule, DeleteWatch
from wifisync.vault.unlocked import Vault

RULE = BrakeRule(share=0.2, items=10, window=60.0)


def vault_of(tmp_path: Path, n: int) -> tuple[SqliteStore, Vault, list[bytes]]:
    store = SqliteStore(tmp_path / "store.sqlite")
    vault = Vault.create(store, DeviceIdentity.generate(), "t", "pw", KdfParams.fresh(1, 8192))
    return store, vault, [vault.add(f"item {i}") for i in range(n)]


def deletes_until_held(store: SqliteStore, vault: Vault, ids: list[bytes], now: float,
                       step: float = 0.0) -> int:
    """Delete items one by one as ``rm`` does; how many went through before the brake."""
    for n, item in enumerate(ids):
        if deletebrake.should_hold(store, RULE, now + n * step):
            return n
        vault.delete(item)
    return len(ids)


def test_more_than_a_fifth_and_at_least_ten_deletes_within_a_minute_are_held(
        tmp_path: Path) -> None:
    store, vault, ids = vault_of(tmp_path, 100)
    assert deletes_until_held(store, vault, ids, 1000.0) == 20  # the 21st is over 20 %
    assert store.count_live_items() == 80
    deletebrake.hold(store, ids[20])
    assert deletebrake.should_hold(store, RULE, 1000.0 + 3600)  # held: the rest wait too


def test_a_small_vault_still_deletes_nine_items_at_once(tmp_path: Path) -> None:
    store, vault, ids = vault_of(tmp_path, 12)
    assert deletes_until_held(store, vault, ids, 1000.0) == 9


def test_deletes_spread_over_more_than_the_window_are_never_held(tmp_path: Path) -> None:
    store, vault, ids = vault_of(tmp_path, 30)
    assert deletes_until_held(store, vault, ids, 1000.0, step=61.0) == 30


def test_held_deletes_are_kept_until_released(tmp_path: Path) -> None:
    store, _vault, ids = vault_of(tmp_path, 2)
    assert deletebrake.hold(store, ids[0]) == 1
    assert deletebrake.hold(store, ids[1]) == 2
    assert deletebrake.hold(store, ids[1]) == 2
    assert deletebrake.held(store) == ids[:2]
    assert deletebrake.release(store) == ids[:2]
    assert deletebrake.held(store) == []
    assert not deletebrake.should_hold(store, RULE, 0.0)


def test_a_receiver_logs_one_line_per_large_delete_burst() -> None:
    watch = DeleteWatch(RULE)
    a, b = b"\x01" * 32, b"\x02" * 32
    assert watch.seen(a, 6, 0.0) is None
    assert watch.seen(b, 3, 1.0) is None
    assert watch.seen(a, 6, 2.0) == 12  # the burst crossed 10: one line
    assert watch.seen(a, 50, 3.0) is None  # same burst: no second line
    assert watch.seen(a, 12, 100.0) == 12  # a new burst after the window
