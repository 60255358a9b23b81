"""Where one device keeps its config, data and runtime files."""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wifisync.store.sqlite import SqliteStore

APP = "wifisync"
ENV_HOME = "WIFISYNC_HOME"


@dataclass(frozen=True, slots=True)
class Home:
    """The three folders of one device; ``--home DIR`` puts all of them under DIR."""

    config_dir: Path
    data_dir: Path
    runtime_dir: Path

    @classmethod
    def locate(cls, home: str | None = None) -> Home:
        """``--home``, else ``$WIFISYNC_HOME``, else the platform's own folders."""
        chosen = home or os.environ.get(ENV_HOME)
        if chosen:
            root = Path(chosen).expanduser().absolute()
            return cls(root / "config", root / "data", root / "run")
        import platformdirs  # not needed with --home or $WIFISYNC_HOME

        with warnings.catch_warnings():
            # Without XDG_RUNTIME_DIR platformdirs warns (with a source line) on every
            # command and falls back to /tmp/runtime-UID; `wifisync doctor` tells instead.
            warnings.simplefilter("ignore")
            runtime = platformdirs.user_runtime_dir(APP)
        return cls(
            Path(platformdirs.user_config_dir(APP)),
            Path(platformdirs.user_data_dir(APP)),
            Path(runtime),
        )

    @property
    def config_file(self) -> Path:
        """The TOML configuration."""
        return self.config_dir / "config.toml"

    @property
    def store_file(self) -> Path:
        """The SQLite store."""
        return self.data_dir / "vault.db"

    @property
    def control_socket(self) -> Path:
        """The daemon's control socket (HTTP over a Unix socket, mode 0600)."""
        return self.runtime_dir / "control.sock"

    @property
    def notify_socket(self) -> Path:
        """The daemon's notify socket (one byte in: look for new local records; mode 0600)."""
        return self.runtime_dir / "notify.sock"

    @property
    def daemon_lock(self) -> Path:
        """Held by the one daemon of this home."""
        return self.runtime_dir / "daemon.lock"

    def ensure(self) -> None:
        """Create the folders, readable by this user only."""
        for d in (self.config_dir, self.data_dir, self.runtime_dir):
            _private_dir(d)

    def ensure_writable(self) -> None:
        """The folders the daemon writes (data, runtime); the config it only reads."""
        for d in (self.data_dir, self.runtime_dir):
            _private_dir(d)

    @contextmanager
    def creating_store(self) -> Iterator[SqliteStore]:
        """The store, for setting up a vault: if the block fails, a file it made is removed."""
        from wifisync.store.sqlite import SqliteStore  # not at import: `wifisync get` stays lean

        self.ensure()
        new = not self.store_file.exists()
        try:
            store = SqliteStore(self.store_file)
            try:
                yield store
            finally:
                store.close()
        except BaseException:
            if new:
                for suffix in ("", "-wal", "-shm"):
                    self.store_file.with_name(self.store_file.name + suffix).unlink(
                        missing_ok=True)
            raise


def _private_dir(d: Path) -> None:
    """Make ``d`` with mode 0700; chmod only a wrong mode (a read-only mount is left alone)."""
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    if stat.S_IMODE(d.stat().st_mode) != 0o700:
        os.chmod(d, 0o700)
