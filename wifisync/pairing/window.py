"""Pairing windows without I/O: time is passed in, so expiry and burning are plain state changes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from wifisync.errors import PairingError
from wifisync.pairing.code import PairingCode


class WindowState(enum.Enum):
    """Where a window is in its one-use life."""

    OPEN = "open"  # waiting for a joiner
    CLAIMED = "claimed"  # a joiner started the exchange: the one guess is being spent
    JOINED = "joined"  # a device joined
    FAILED = "failed"  # wrong code or a broken exchange: burned for good
    EXPIRED = "expired"  # nobody came in time
    CANCELLED = "cancelled"  # the member gave up (the `pair` command went away)


FINAL_STATES = frozenset(
    {WindowState.JOINED, WindowState.FAILED, WindowState.EXPIRED, WindowState.CANCELLED})


@dataclass(frozen=True, slots=True)
class WindowResult:
    """How a window ended, as `wifisync pair` reports it."""

    state: WindowState
    reason: str = ""
    device_id: bytes | None = None
    device_name: str = ""


@dataclass(slots=True)
class PairingWindow:
    """One code, one use: open until it expires, claimed by the first joiner, then settled."""

    code: PairingCode
    expires_at: float
    state: WindowState = WindowState.OPEN
    role: str = "member"  # what the joiner's MEMBER record grants: "member" or "relay"
    result: WindowResult | None = None

    def is_open(self, now: float) -> bool:
        """Whether a joiner may start an exchange now."""
        return self.state is WindowState.OPEN and now < self.expires_at

    def claim(self, now: float) -> None:
        """Spend the window's one guess on the joiner that asks first."""
        self.expire_if_due(now)
        if not self.is_open(now):
            raise PairingError("no open pairing window for this code")
        self.state = WindowState.CLAIMED

    def expire_if_due(self, now: float) -> bool:
        """End an unclaimed window whose time is up; True when this call ended it."""
        if self.state is WindowState.OPEN and now >= self.expires_at:
            self._settle(WindowResult(WindowState.EXPIRED, "the pairing window expired"))
            return True
        return False

    def joined(self, device_id: bytes, name: str) -> None:
        """A device was admitted through this window."""
        if self.state is not WindowState.CLAIMED:
            raise PairingError("pairing window was not claimed")
        self._settle(WindowResult(WindowState.JOINED, "", device_id, name))

    def fail(self, reason: str) -> None:
        """Burn the window: the exchange failed after it was claimed (or before anyone came)."""
        if self.state in FINAL_STATES:
            return
        self._settle(WindowResult(WindowState.FAILED, reason))

    def cancel(self) -> None:
        """The member stopped waiting; an exchange already under way is burned too."""
        if self.state not in FINAL_STATES:
            self._settle(WindowResult(WindowState.CANCELLED, "pairing was cancelled"))

    def _settle(self, result: WindowResult) -> None:
        self.state = result.state
        self.result = result


@dataclass(slots=True)
class PairingWindows:
    """Every window this member opened; a code handed out once is never handed out again."""

    windows: dict[int, PairingWindow] = field(default_factory=dict)
    issued: set[str] = field(default_factory=set)

    def open(self, now: float, timeout: float) -> PairingWindow:
        """A new window with a fresh code, valid for ``timeout`` seconds from ``now``."""
        if not timeout > 0:
            raise PairingError("a pairing window needs a positive timeout")
        self.sweep(now)
        busy = {n for n, w in self.windows.items() if w.state not in FINAL_STATES}
        while True:
            code = PairingCode.generate(busy)
            if str(code) not in self.issued:
                break
        self.issued.add(str(code))
        window = PairingWindow(code, now + timeout)
        self.windows[code.nameplate] = window
        return window

    def find(self, nameplate: int, now: float) -> PairingWindow | None:
        """The open window with this nameplate, if any."""
        window = self.windows.get(nameplate)
        if window is None:
            return None
        window.expire_if_due(now)
        return window if window.is_open(now) else None

    def any_open(self, now: float) -> bool:
        """Whether some window admits a joiner now."""
        return any(w.is_open(now) for w in self.windows.values())

    def sweep(self, now: float) -> list[PairingWindow]:
        """Expire overdue windows and forget settled ones; returns the windows expired now."""
        expired = [w for w in self.windows.values() if w.expire_if_due(now)]
        self.windows = {n: w for n, w in self.windows.items() if w.state not in FINAL_STATES}
        return expired
