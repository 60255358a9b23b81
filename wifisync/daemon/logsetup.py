"""The daemon's log lines: journal-friendly under systemd, and a repeated warning said once.

When stderr is the journal (systemd sets ``JOURNAL_STREAM`` to its device and inode),
lines carry a ``<N>`` syslog priority and no timestamp of their own, so
``journalctl -p warning`` finds the warnings and each line shows one time. Elsewhere
(a terminal, launchd's log file) lines start with the time and the level.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable

PRIORITIES = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
              logging.DEBUG: 7}
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(message)s"
REPEAT_WINDOW = 600.0  # a warning seen again within this many seconds is counted, not logged
MAX_TRACKED = 256
QUIET_LOGGERS = ("aiohttp.access", "aiohttp.server", "aiohttp.websocket", "asyncio")


def stderr_is_journal() -> bool:
    """Whether fd 2 is the journal stream systemd connected (``JOURNAL_STREAM=DEV:INODE``)."""
    dev, _, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(2)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class JournalFormatter(logging.Formatter):
    """``<N>message``: the journal reads the priority and stamps the time itself."""

    def format(self, record: logging.LogRecord) -> str:
        """Every line of the message with the record's syslog priority."""
        prefix = f"<{PRIORITIES.get(record.levelno, 6)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


class RepeatLimiter(logging.Filter):
    """Lets a warning through once per window; the next one says how many were held back.

    Two warnings repeat when their format string and their non-numeric arguments are
    the same (a retry delay or a count may differ; the peer address may not).
    """

    def __init__(self, window: float = REPEAT_WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self._seen: OrderedDict[tuple[object, ...], tuple[float, int]] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a repeat inside the window."""
        if record.levelno < logging.WARNING:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        key = (record.name, record.levelno, str(record.msg),
               *(str(a) for a in args if not isinstance(a, int | float)))
        now = self.clock()
        first, held = self._seen.get(key, (-self.window, 0))
        if now - first < self.window:
            self._seen[key] = (first, held + 1)
            return False
        self._seen[key] = (now, 0)
        self._seen.move_to_end(key)
        while len(self._seen) > MAX_TRACKED:
            self._seen.popitem(last=False)
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last " \
                         f"{(now - first) / 60:.0f} min)"
        return True


def setup_daemon_logging(level: str) -> None:
    """Log to stderr in the form its reader wants, at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal():
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT, "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(RepeatLimiter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def set_level(level: str) -> None:
    """Change the level of every wifisync log line (SIGHUP reload)."""
    logging.getLogger().setLevel(level.upper())
