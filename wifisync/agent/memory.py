"""Keeping a secret out of swap, core dumps and debuggers (Linux; best effort elsewhere)."""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import resource
import sys

from wifisync.errors import WifisyncError

PR_SET_DUMPABLE = 4
PAGE = mmap.PAGESIZE


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def harden_process() -> None:
    """No core file, and (Linux) not dumpable: no ptrace attach or /proc/PID/mem by our uid."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform.startswith("linux") and _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise WifisyncError("cannot make the agent non-dumpable (prctl failed)")


def is_dumpable() -> bool:
    """Whether this process may be dumped or traced (Linux), for tests and status."""
    pr_get_dumpable = 3
    return bool(_libc().prctl(pr_get_dumpable, 0, 0, 0, 0))


class LockedSecret:
    """A secret of up to one page in its own anonymous mapping, locked in RAM, never dumped."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) > PAGE:
            raise ValueError("secret larger than a page")
        self._map = mmap.mmap(-1, PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._size = len(secret)
        address = ctypes.addressof(ctypes.c_char.from_buffer(self._map))
        if _libc().mlock(ctypes.c_void_p(address), ctypes.c_size_t(PAGE)) != 0:
            self._map.close()
            raise WifisyncError("cannot lock memory for the vault key (mlock failed; "
                                "check `ulimit -l`)")
        if hasattr(mmap, "MADV_DONTDUMP"):
            self._map.madvise(mmap.MADV_DONTDUMP)
        self._map[: self._size] = secret

    def reveal(self) -> bytes:
        """A short-lived copy of the secret for one operation."""
        if self._size == 0:
            raise WifisyncError("the vault is locked")
        return self._map[: self._size]

    def wipe(self) -> None:
        """Overwrite the secret with zeros (the mapping stays locked until exit)."""
        self._map[:PAGE] = bytes(PAGE)
        self._size = 0
