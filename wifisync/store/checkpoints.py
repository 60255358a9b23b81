"""WAL checkpoints on a thread of their own, so that a daemon's commits never copy the WAL back.

SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold: it copies
the WAL's pages into the database file and waits for two fsyncs. In a 100k-record initial
sync that was about 0.4 s of the store thread, the one thread the sync waits on, and a
few ms inside one live change in ~140. A daemon's store hands that work to this thread:
its own connection runs PASSIVE checkpoints, which never wait for the writer or a reader,
once enough was committed since the last one. The writer keeps an automatic checkpoint
far beyond that, as a bound should this thread fall behind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

EVERY_BYTES = 4 * 1024 * 1024  # records committed between two checkpoints (the WAL holds
# about twice that: index pages) ...
EVERY_COMMITS = 128  # ... or commits (a live change writes ~7 pages: about 14 MiB of WAL)
BACKSTOP_PAGES = 16384  # the writer's own automatic checkpoint: 256 MiB of WAL at 16 KiB pages
WAL_LIMIT_BYTES = 64 * 1024 * 1024  # a WAL that grew past this is cut back to it when reset


class Checkpoints:
    """One thread and one connection that checkpoint a store's WAL when told enough was written."""

    def __init__(self, path: Path, busy_timeout_ms: int) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        self._bytes = 0
        self._commits = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="wifisync-checkpoint",
                                        daemon=True)
        self._thread.start()

    def committed(self, record_bytes: int) -> None:
        """A write transaction committed ``record_bytes`` of records (called by the writer)."""
        self._bytes += record_bytes
        self._commits += 1
        if self._bytes >= EVERY_BYTES or self._commits >= EVERY_COMMITS:
            self.now()

    def now(self) -> None:
        """Checkpoint as soon as the thread can (a finished sync: leave a short WAL behind)."""
        self._bytes = self._commits = 0
        self._wake.set()

    def close(self) -> None:
        """Stop the thread (after the checkpoint it is running, if any) and close its connection."""
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self._db.close()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # the writer's backstop bounds the WAL meanwhile
                log.warning("WAL checkpoint failed: %s", exc)
