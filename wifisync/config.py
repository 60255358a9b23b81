"""The TOML configuration: typed, validated, every key documented in ``config.example.toml``.

A missing file means every default. Unknown sections or keys and bad values are
refused with the file and the key named, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wifisync.errors import ConfigError
from wifisync.home import Home
from wifisync.net.address import parse_address

if TYPE_CHECKING:
    from wifisync.vault.deletebrake import BrakeRule

MIN_KDF_OPSLIMIT = 1
MIN_KDF_MEMLIMIT_MIB = 64
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_DEVICE_NAME = 200


# --- per-key checks: each takes the raw TOML value and returns the typed one or raises ----


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a string, got {v!r}")
    return v


def _device_name(v: Any) -> str:
    name = _str(v)
    if len(name) > MAX_DEVICE_NAME or not name.isprintable():
        raise ValueError(f"expected a printable name of at most {MAX_DEVICE_NAME} characters")
    return name


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


def _int_at_least(minimum: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected a whole number, got {v!r}")
        if v < minimum:
            raise ValueError(f"must be at least {minimum}, got {v}")
        return v
    return check


def _positive_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"expected a number of seconds, got {v!r}")
    if not v > 0:
        raise ValueError(f"must be greater than 0, got {v}")
    return float(v)


def _share(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1:
        raise ValueError(f"expected a share greater than 0 and at most 1, got {v!r}")
    return float(v)


def _host_port(v: Any) -> str:
    parse_address(_str(v))
    return str(v)


def _host_port_list(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise ValueError(f"expected a list of \"HOST:PORT\" strings, got {v!r}")
    return tuple(_host_port(x) for x in v)


def _name_list(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise ValueError(f"expected a list of interface names, got {v!r}")
    return tuple(v)


def _log_level(v: Any) -> str:
    level = _str(v).lower()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {v!r}")
    return level


def _key(check: Callable[[Any], Any], default: Any) -> Any:
    """A config key: its default and the check that turns a TOML value into the typed one."""
    return field(default=default, metadata={"check": check})


# --- the sections ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """This device as other members see it."""

    name: str = _key(_device_name, "")

    @property
    def display_name(self) -> str:
        """The configured name, else the host name."""
        return self.name or socket.gethostname()[:MAX_DEVICE_NAME]


@dataclass(frozen=True, slots=True)
class VaultConfig:
    """Argon2id cost for wrapping the vault key (used at init and passwd); the brake on
    mass deletion; the largest attachment."""

    kdf_opslimit: int = _key(_int_at_least(MIN_KDF_OPSLIMIT), 3)
    kdf_memlimit_mib: int = _key(_int_at_least(MIN_KDF_MEMLIMIT_MIB), 64)
    delete_brake_share: float = _key(_share, 0.2)
    delete_brake_items: int = _key(_int_at_least(1), 10)
    delete_brake_window: float = _key(_positive_float, 60.0)
    attachment_max_mib: int = _key(_int_at_least(1), 64)

    @property
    def attachment_max_bytes(self) -> int:
        """Largest attachment this device attaches or imports, in bytes."""
        return self.attachment_max_mib * 1024 * 1024

    @property
    def kdf_memlimit(self) -> int:
        """Memory limit in bytes."""
        return self.kdf_memlimit_mib * 1024 * 1024

    @property
    def delete_brake(self) -> BrakeRule:
        """The mass-deletion brake's rule."""
        from wifisync.vault.deletebrake import BrakeRule

        return BrakeRule(self.delete_brake_share, self.delete_brake_items,
                         self.delete_brake_window)


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """How the daemon listens, finds peers and notices dead ones."""

    listen: str = _key(_host_port, "0.0.0.0:7415")
    peers: tuple[str, ...] = _key(_host_port_list, ())
    mdns: bool = _key(_bool, True)
    interfaces: tuple[str, ...] = _key(_name_list, ())
    ping_interval: float = _key(_positive_float, 10.0)
    peer_timeout: float = _key(_positive_float, 30.0)
    pairing_timeout: int = _key(_int_at_least(1), 300)
    log_level: str = _key(_log_level, "info")


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration of one device."""

    device: DeviceConfig = field(default_factory=DeviceConfig)
    vault: VaultConfig = field(default_factory=VaultConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)


SECTIONS: dict[str, type[Any]] = {
    "device": DeviceConfig, "vault": VaultConfig, "daemon": DaemonConfig,
}


def parse_config(data: Mapping[str, Any], source: Path | str) -> Config:
    """Validate parsed TOML into a :class:`Config`; errors name ``source`` and the key."""
    sections: dict[str, Any] = {}
    for section_name, table in data.items():
        cls = SECTIONS.get(section_name)
        if cls is None:
            raise ConfigError(f"{source}: unknown section [{section_name}] "
                              f"(known: {', '.join(SECTIONS)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {section_name}: expected a [{section_name}] table")
        checks = {f.name: f.metadata["check"] for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in table.items():
            if key not in checks:
                raise ConfigError(f"{source}: {section_name}.{key}: unknown key "
                                  f"(known: {', '.join(checks)})")
            try:
                values[key] = checks[key](raw)
            except ValueError as exc:
                raise ConfigError(f"{source}: {section_name}.{key}: {exc}") from None
        sections[section_name] = cls(**values)
    config = Config(**sections)
    if config.daemon.peer_timeout <= config.daemon.ping_interval:
        raise ConfigError(f"{source}: daemon.peer_timeout: must be longer than "
                          f"daemon.ping_interval ({config.daemon.ping_interval})")
    return config


def load_config(home: Home) -> Config:
    """Read ``home``'s config file; a missing file means all defaults."""
    path = home.config_file
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Config()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    import tomllib  # only when there is a file

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(data, path)
