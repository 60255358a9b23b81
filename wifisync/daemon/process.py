"""What a daemon process owes its host: one daemon per home (a lock), news for systemd,
memory it hands back once a sync is over (the C allocator), no CA bundle loaded, and the
fastest event loop installed."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from wifisync.errors import DaemonError
from wifisync.home import Home

T = TypeVar("T")


class DaemonLock:
    """One daemon per home: an exclusive ``flock`` on the runtime dir's lock file."""

    def __init__(self, home: Home) -> None:
        self.path = home.daemon_lock
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or say who holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                os.close(fd)  # a stopping daemon removed the file we locked: lock the new one
                return self.acquire()
        except OSError as exc:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise DaemonError(f"a daemon is already running for this home"
                                  f"{f' (pid {holder})' if holder else ''}") from None
            raise DaemonError(f"{self.path}: cannot lock: {exc.strerror}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Let the next daemon in; the lock file goes, so a stopped daemon leaves nothing."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None


SYSTEM_ALLOCATOR = "malloc"  # PYTHONMALLOC value: Python's objects straight from the C heap


def use_system_allocator() -> None:
    """Start this daemon again (same PID, same arguments) on the C allocator, on Linux.

    Python's small-object allocator takes memory in 1 MiB arenas and gives one back only
    once every object in it is gone. The records of an initial sync pass through them, and
    the few objects made meanwhile that live on keep the arenas resident: after a 100k
    sync the daemon held 82 MiB, against 67 MiB on the C allocator, whose free pages
    ``malloc_trim`` hands back when the sync ends (``NodeStore.release_memory``). Nothing
    is done when the user chose an allocator, when Python ignores the environment (``-E``,
    ``-I``: the variable would not take, and we would start again for ever), or when the
    new start fails (the daemon then runs on as it is).
    """
    if not sys.platform.startswith("linux") or "PYTHONMALLOC" in os.environ \
            or sys.flags.ignore_environment or not sys.executable:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError):
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]],
                  {**os.environ, "PYTHONMALLOC": SYSTEM_ALLOCATOR})


def trust_no_authority() -> None:
    """Point OpenSSL's default certificate-authority paths at nothing, for this process.

    The daemon trusts pinned member certificates only and never a certificate authority,
    but aiohttp builds a verifying context at import, which loads the system's whole CA
    bundle: 40-50 ms of every daemon start. With these paths empty no CA is ever loaded,
    which also says in the process itself that none is trusted.
    """
    os.environ["SSL_CERT_FILE"] = os.devnull
    os.environ["SSL_CERT_DIR"] = os.devnull


def notify_systemd(message: str) -> None:
    """Tell systemd our state when it asked us to (``Type=notify``); no dependency needed."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, \
            contextlib.suppress(OSError):
        sock.connect(address)
        sock.sendall(message.encode())


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (every platform but Windows), else None.

    Its loop and its TLS transport are compiled: one change to a peer costs each daemon
    less CPU than on asyncio's pure-Python loop and ``SSLProtocol``. None means asyncio's
    own loop, which the daemon runs on just as well.
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_daemon(main: Coroutine[Any, Any, T]) -> T:
    """Run the daemon's main coroutine to its end on the loop :func:`loop_factory` chose."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
