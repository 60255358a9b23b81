"""The CLI's side of the control socket: tell a running daemon that the store changed."""

from __future__ import annotations

from ..home import Home


def notify_daemon(home: Home) -> bool:
    """Tell this home's daemon that new local records were committed; False when none runs."""
    return False
