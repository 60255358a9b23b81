"""Process limits set at start: no core dumps of secrets, enough file descriptors to serve."""

from __future__ import annotations

import contextlib
import resource


def disable_core_dumps() -> None:
    """No core file, ever: the CLI holds the vault key and the master password in memory.

    The hard limit goes to zero too, so nothing this process runs can raise it back.
    """
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft open-file limit towards ``wanted`` (never above the hard limit).

    Returns the soft limit in force afterwards. A systemd service starts with a soft limit
    of 1024; the daemon's caps on connections are sized against what this returns.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
