"""Helper processes that check Ed25519 signatures, so large batches never queue for our GIL.

Checking a signature releases the GIL, but each of the 100k checks of an initial sync
takes it back twice; with the session's decoding and SQLite work holding it meanwhile,
threads of the same process spend more time handing the GIL around than verifying. A
helper process (:mod:`wifisync.daemon.sigcheck`, importing only libsodium's binding)
gets a core of its own. It sees only public keys, signatures and signed bytes, never a
secret, and it fails closed: a helper that cannot start, dies or answers out of shape
makes :meth:`SignatureHelpers.submit`'s future raise, and the caller checks in-process.
The daemon's :class:`wifisync.daemon.verifier.HelperVerifier` owns the helpers.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import itertools
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import IO

import nacl

from wifisync.daemon import sigcheck

MAX_STARTS_PER_HELPER = 3  # helpers that keep dying are not restarted for ever
IDLE_SECONDS = 10.0  # helpers unused this long exit; the next large batch starts them again
PIPE_BYTES = 1024 * 1024  # Linux's default ceiling for an unprivileged pipe size
BEHIND = 7  # unanswered requests every running helper has before one more is started: a
# helper is 11 MiB. On 2 cores a sync's batch is two requests, and a session keeps at most 4
# batches unstored, storing the oldest 2 while the newer 2 are checked: 7 unanswered at a
# request means none of the 3 older batches is checked yet. During a 100k sync one helper
# had 0-3 unanswered at each request for records signed as trees (one signature per 32),
# 5-6 now and then under load (when a second helper buys nothing: no core is idle), and
# up to 6 for records each signed alone
BEHIND_CHECKS = 1024  # or signatures unchecked (about 55 ms of work): records each signed
# alone (typed ones) are a signature each, so a batch of them starts the second helper at
# once (a 10k sync of them, in process: see the closing note), while a tree's 32 records
# are one signature and never do
Claims = Iterable[tuple[bytes, int]]  # (a record's bytes, where its signature starts)
Request = tuple[int, bytes, Claims]


def helper_command() -> list[str]:
    """The helper's argv: isolated (``-I``), no site module (``-S``), sigcheck.py by path.

    ``-I`` ignores ``PYTHON*`` variables, the user's site directory and the working
    directory; the only folders added are those PyNaCl and cffi were loaded from here.
    """
    folders = [str(Path(nacl.__file__).resolve().parents[1])]
    cffi = importlib.util.find_spec("_cffi_backend")
    if cffi is not None and cffi.origin is not None:
        folders.append(str(Path(cffi.origin).resolve().parent))
    return [sys.executable, "-I", "-S", str(Path(sigcheck.__file__).resolve()),
            *dict.fromkeys(folders)]


HELPER_CWD = "/"  # nothing in the daemon's working directory is ever imported
HELPER_ENV = {"LC_ALL": "C.UTF-8"}  # no inherited variable: the master password may be one


def _widen_pipe(stream: IO[bytes] | None) -> None:
    """Let a whole request sit in the pipe (Linux), so writing it never waits on the helper."""
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if stream is None or setpipe is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(stream.fileno(), setpipe, PIPE_BYTES)


class _Helper:
    """One helper process; requests are answered in order, each resolving its future."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            helper_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=HELPER_ENV, cwd=HELPER_CWD, close_fds=True)
        _widen_pipe(self._proc.stdin)
        self._lock = threading.Lock()
        self._waiting: dict[int, Future[bytes]] = {}
        self._checks: dict[int, int] = {}  # signatures each unanswered request asks for
        self._ids = itertools.count()
        self._outbox: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        self.alive = True
        for loop in (self._read_answers, self._write_requests):
            threading.Thread(target=loop, name="wifisync-sigproc", daemon=True).start()

    def submit(self, public_key: bytes, claims: Claims, checks: int) -> Future[bytes]:
        future: Future[bytes] = Future()
        with self._lock:
            if not self.alive:
                future.set_exception(OSError("signature helper is gone"))
                return future
            n = next(self._ids)
            self._waiting[n] = future
            self._checks[n] = checks
        self._outbox.put((n, public_key, claims))
        return future

    def _write_requests(self) -> None:
        """Feed the helper from a thread of its own: the caller never waits on the pipe.

        Each request is framed only when the pipe takes it: requests waiting for a busy
        helper hold the records the session holds anyway, not a second copy of their bytes
        (up to 16 frames of 1024 records, 12 MiB, during a 100k sync).
        """
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            while (request := self._outbox.get()) is not None:
                sigcheck.write_frame(stdin, sigcheck.encode_request(*request))
                del request
        except Exception as exc:  # a closed pipe, or claims that could not be read: fail them
            with self._lock:
                self._fail(exc)
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def _read_answers(self) -> None:
        assert self._proc.stdout is not None
        try:
            while (frame := sigcheck.read_frame(self._proc.stdout)) is not None:
                n, flags = sigcheck.decode_answer(frame)
                with self._lock:
                    future = self._waiting.pop(n)
                    del self._checks[n]
                future.set_result(flags)
        except Exception as exc:  # an answer out of shape: trust nothing more from it
            with self._lock:
                self._fail(exc)
            return
        with self._lock:
            self._fail(OSError("signature helper exited"))

    def _fail(self, exc: BaseException) -> None:
        """Fail every open request (called with the lock held)."""
        self.alive = False
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(exc)
        self._waiting.clear()
        self._checks.clear()

    @property
    def backlog(self) -> int:
        """Requests not answered yet."""
        with self._lock:
            return len(self._waiting)

    @property
    def unchecked(self) -> int:
        """Signatures the unanswered requests ask for."""
        with self._lock:
            return sum(self._checks.values())

    @property
    def behind(self) -> bool:
        """Whether this helper has enough queued that another would help."""
        return self.backlog >= BEHIND or self.unchecked >= BEHIND_CHECKS

    def close(self) -> None:
        self._outbox.put(None)  # the writer closes the helper's stdin: it exits on EOF
        try:
            self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self._proc.kill()


class SignatureHelpers:
    """Up to ``count`` helper processes, started as the checks fall behind (the first on
    first use, another when each running one is ``behind``), stopped
    after ``idle_seconds`` unused (an initial sync needs them; a daemon that is done
    syncing keeps no memory for them)."""

    def __init__(self, count: int, idle_seconds: float = IDLE_SECONDS) -> None:
        self._count = count
        self._idle_seconds = idle_seconds
        self._helpers: list[_Helper] = []
        self._lock = threading.Lock()
        self._starts = 0
        self._last_use = 0.0
        self._reaper: threading.Timer | None = None

    def submit(self, public_key: bytes, claims: Claims, checks: int) -> Future[bytes]:
        """Check ``claims`` (``checks`` distinct signatures) in a helper (read when the
        helper takes them, on another thread: a lazy iterable of immutable data); the
        future holds one flag byte per claim."""
        with self._lock:
            self._last_use = time.monotonic()
            self._helpers = [w for w in self._helpers if w.alive]
            helper = min(self._helpers, key=lambda w: w.unchecked, default=None)
            if (helper is None or helper.behind) \
                    and len(self._helpers) < self._count \
                    and self._starts < MAX_STARTS_PER_HELPER * self._count:
                self._starts += 1
                try:
                    helper = _Helper()
                except Exception as exc:  # no interpreter to start, no pipes: check in-process
                    return _failed(exc)
                self._helpers.append(helper)
            if helper is None:
                return _failed(OSError("no signature helper could be started"))
            if self._reaper is None:
                self._arm(self._idle_seconds)
        return helper.submit(public_key, claims, checks)

    def _arm(self, seconds: float) -> None:
        """Look again in ``seconds`` whether the helpers went unused (lock held)."""
        self._reaper = threading.Timer(seconds, self._reap)
        self._reaper.daemon = True
        self._reaper.start()

    def _reap(self) -> None:
        """Stop helpers unused for ``idle_seconds``; an idle stop is no failed start."""
        with self._lock:
            self._reaper = None
            idle = time.monotonic() - self._last_use
            busy = any(w.backlog for w in self._helpers)
            if idle < self._idle_seconds or busy:
                self._arm(max(0.1, self._idle_seconds - idle))
                return
            helpers, self._helpers = self._helpers, []
            self._starts -= sum(1 for w in helpers if w.alive)
        for w in helpers:
            w.close()

    def close(self) -> None:
        """Stop the helpers (they also stop on their own when we exit)."""
        with self._lock:
            helpers, self._helpers = self._helpers, []
            if self._reaper is not None:
                self._reaper.cancel()
                self._reaper = None
        for w in helpers:
            w.close()


def _failed(exc: BaseException) -> Future[bytes]:
    future: Future[bytes] = Future()
    future.set_exception(exc)
    return future
