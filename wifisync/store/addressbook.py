"""Last known network addresses of paired devices, so a daemon can dial them after a restart."""

from __future__ import annotations

import json
import os
from pathlib import Path

from wifisync.errors import WifisyncError

FILE_NAME = "peers.json"


class AddressBook:
    """A small JSON file in the data dir: device ID (hex) -> "HOST:PORT"."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME

    def all(self) -> dict[bytes, str]:
        """Every remembered address."""
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise WifisyncError(f"{self.path}: unreadable address book: {exc}") from exc
        if not isinstance(raw, dict):
            raise WifisyncError(f"{self.path}: address book is not a JSON object")
        return {bytes.fromhex(k): str(v) for k, v in raw.items()}

    def set(self, device_id: bytes, address: str) -> None:
        """Remember where a device was last reached (atomic replace)."""
        entries = {k.hex(): v for k, v in self.all().items()}
        if entries.get(device_id.hex()) == address:
            return
        entries[device_id.hex()] = address
        self._write(entries)

    def forget(self, device_id: bytes) -> None:
        """Drop a device's address (after revocation)."""
        self._write({k.hex(): v for k, v in self.all().items() if k != device_id})

    def _write(self, entries: dict[str, str]) -> None:
        """Replace the file atomically, readable by this user only."""
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(entries, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)
