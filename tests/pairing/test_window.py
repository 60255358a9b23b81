"""Pairing windows with a fake clock: expiry, one guess per code, codes never handed out twice."""

from __future__ import annotations

import pytest

from wifisync.errors import PairingError
from wifisync.pairing.code import PairingCode
from wifisync.pairing.window import PairingWindows, WindowState


def test_window_is_open_until_its_timeout() -> None:
    windows = PairingWindows()
    w = windows.open(now=100.0, timeout=300)
    assert w.is_open(399.9) and windows.any_open(399.9)
    assert windows.find(w.code.nameplate, 399.9) is w
    assert windows.find(w.code.nameplate, 400.0) is None
    assert w.state is WindowState.EXPIRED and not windows.any_open(400.0)
    assert w.result is not None and "expired" in w.result.reason


def test_expired_window_cannot_be_claimed() -> None:
    w = PairingWindows().open(now=0.0, timeout=5)
    with pytest.raises(PairingError):
        w.claim(5.0)
    assert w.state is WindowState.EXPIRED


def test_a_window_admits_one_exchange_only() -> None:
    windows = PairingWindows()
    w = windows.open(now=0.0, timeout=60)
    w.claim(1.0)
    assert not windows.any_open(1.0) and windows.find(w.code.nameplate, 1.0) is None
    with pytest.raises(PairingError):
        w.claim(1.0)


def test_failed_exchange_burns_the_window_for_good() -> None:
    windows = PairingWindows()
    w = windows.open(now=0.0, timeout=60)
    w.claim(1.0)
    w.fail("wrong pairing code")
    assert w.state is WindowState.FAILED
    assert windows.find(w.code.nameplate, 2.0) is None
    with pytest.raises(PairingError):
        w.claim(2.0)
    w.expire_if_due(100.0)  # a burned window stays burned
    assert w.state is WindowState.FAILED


def test_claimed_window_does_not_expire_under_the_exchange() -> None:
    w = PairingWindows().open(now=0.0, timeout=10)
    w.claim(9.0)
    assert not w.expire_if_due(11.0)
    w.joined(b"d" * 32, "laptop")
    assert w.state is WindowState.JOINED and w.result is not None
    assert w.result.device_name == "laptop"


def test_joined_needs_a_claimed_window() -> None:
    w = PairingWindows().open(now=0.0, timeout=10)
    with pytest.raises(PairingError):
        w.joined(b"d" * 32, "laptop")


def test_cancel_ends_an_open_window() -> None:
    windows = PairingWindows()
    w = windows.open(now=0.0, timeout=10)
    w.cancel()
    assert w.state is WindowState.CANCELLED and not windows.any_open(1.0)


def test_a_code_is_never_issued_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = PairingCode(5, ("maple", "violin")), PairingCode(6, ("tiger", "zebra"))
    drawn = iter([first, first, second])
    monkeypatch.setattr(PairingCode, "generate", classmethod(lambda cls, taken=(): next(drawn)))
    windows = PairingWindows()
    a = windows.open(now=0.0, timeout=10)
    a.cancel()
    b = windows.open(now=1.0, timeout=10)
    assert (a.code, b.code) == (first, second)


def test_open_windows_get_distinct_nameplates() -> None:
    windows = PairingWindows()
    opened = [windows.open(now=0.0, timeout=10) for _ in range(30)]
    assert len({w.code.nameplate for w in opened}) == 30


def test_sweep_forgets_settled_windows() -> None:
    windows = PairingWindows()
    w = windows.open(now=0.0, timeout=10)
    assert windows.sweep(10.0) == [w]
    assert windows.windows == {}


@pytest.mark.parametrize("timeout", [0, -1])
def test_window_needs_a_positive_timeout(timeout: float) -> None:
    with pytest.raises(PairingError):
        PairingWindows().open(now=0.0, timeout=timeout)
