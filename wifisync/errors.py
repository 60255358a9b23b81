"""One error tree: the CLI turns each kind into a one-line message and an exit code."""

from __future__ import annotations


class WifisyncError(Exception):
    """Root of every error wifisync raises on purpose."""

    exit_code = 1


class UsageError(WifisyncError):
    """The command line itself is wrong."""

    exit_code = 2


class ConfigError(WifisyncError):
    """The configuration file is unreadable or holds a bad key or value."""


class NotInitialisedError(WifisyncError):
    """The home holds no device or vault yet."""


class AlreadyInitialisedError(WifisyncError):
    """The home already holds a device or vault."""


class WrongPasswordError(WifisyncError):
    """The master password does not unwrap the vault key."""


class ItemNotFoundError(WifisyncError):
    """No item matches what the user named."""


class AmbiguousItemError(WifisyncError):
    """More than one item matches what the user named."""


class IntegrityError(WifisyncError):
    """A record failed its signature, hash or decryption check."""


class StoreError(WifisyncError):
    """The store file is unreadable, locked for too long or of an unknown schema."""


class ProtocolError(WifisyncError):
    """A peer sent something the sync protocol does not allow; the session ends."""


class AuthenticationError(WifisyncError):
    """A peer is not a member this device trusts, or does not trust this device."""


class PairingError(WifisyncError):
    """Pairing failed: wrong code, closed window, or a refused join."""


class DaemonError(WifisyncError):
    """The daemon cannot start, or cannot be reached over its control socket."""
