"""Writing files that hold secrets: readable by this user only, never half-written."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from wifisync.errors import WifisyncError


def write_private(path: Path, data: bytes, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600 (through a temporary file, then renamed);
    an existing file is replaced only with ``overwrite``."""
    write_private_with(path, lambda f: f.write(data), overwrite)


def write_private_with(path: Path, write: Callable[[IO[bytes]], object],
                       overwrite: bool = False) -> None:
    """As :func:`write_private`, the content written by ``write`` a piece at a time."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise WifisyncError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic, and fails if the file exists meanwhile
            tmp.unlink()
    except FileExistsError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise WifisyncError(f"{path} exists; add --force to replace it") from None
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise WifisyncError(f"cannot write {path}: {exc.strerror}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def refuse_existing(path: Path, overwrite: bool) -> None:
    """Fail early, before any work, when ``path`` exists and may not be replaced."""
    if not overwrite and (path.exists() or path.is_symlink()):
        raise WifisyncError(f"{path} exists; add --force to replace it")


def read_input(path: Path) -> bytes:
    """A file's bytes, or one clear error."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise WifisyncError(f"cannot read {path}: {exc.strerror}") from exc
