"""What most commands share: the home, its config, identity and store, and the master password."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

from wifisync.config import Config, load_config
from wifisync.errors import NotInitialisedError, WifisyncError
from wifisync.home import Home
from wifisync.model.identity import DeviceIdentity
from wifisync.store.sqlite import SqliteStore
from wifisync.vault.unlocked import Vault

ENV_PASSWORD = "WIFISYNC_PASSWORD"
ENV_NEW_PASSWORD = "WIFISYNC_NEW_PASSWORD"
NOT_INITIALISED = ("this device is not set up; run `wifisync init` to create a vault, or "
                   "`wifisync join CODE` to join one")


def locate_home(args: argparse.Namespace) -> Home:
    """``--home``, else ``$WIFISYNC_HOME``, else the platform folders."""
    return Home.locate(getattr(args, "home", None))


def is_initialised(home: Home) -> bool:
    """Whether this home already holds a device identity or a store."""
    return DeviceIdentity.exists(home.data_dir) or home.store_file.exists()


@contextmanager
def open_store(home: Home) -> Iterator[SqliteStore]:
    """The home's existing store, closed afterwards; a missing one means not initialised."""
    if not home.store_file.exists():
        raise NotInitialisedError(NOT_INITIALISED)
    store = SqliteStore(home.store_file)
    try:
        yield store
    finally:
        store.close()


@dataclass(frozen=True, slots=True)
class Context:
    """An initialised home, loaded: config, identity and open store."""

    home: Home
    config: Config
    identity: DeviceIdentity
    store: SqliteStore


@contextmanager
def loaded(args: argparse.Namespace) -> Iterator[Context]:
    """Load the home's config, identity and store (no password needed)."""
    home = locate_home(args)
    config = load_config(home)
    identity = DeviceIdentity.load(home.data_dir)
    with open_store(home) as store:
        yield Context(home, config, identity, store)


@contextmanager
def unlocked(args: argparse.Namespace, agent: bool = True) -> Iterator[tuple[Context, Vault]]:
    """Load the home and open its vault: with the unlock agent's key while it runs
    (``agent``), else with the master password."""
    from wifisync.client.agent import AgentVault, agent_key
    from wifisync.vault.unlocked import vault_id_of

    with loaded(args) as ctx:
        key = agent_key(ctx.home.runtime_dir, vault_id_of(ctx.store)) if agent else None
        if key is not None:
            vault = AgentVault.with_key(ctx.store, ctx.identity, key)
            vault.runtime_dir = ctx.home.runtime_dir
            yield ctx, vault
            return
        password = PasswordSource(args).current()
        yield ctx, Vault.unlock(ctx.store, ctx.identity, password)


def after_write(home: Home) -> None:
    """Tell a running daemon there are new local records to push."""
    from wifisync.client.control import notify_daemon

    notify_daemon(home)


class PasswordSource:
    """Master passwords from ``--password-stdin`` lines, the environment, or a terminal prompt.

    ``--password-stdin`` gives one line per password asked for (passwd: current, then
    new); otherwise ``WIFISYNC_PASSWORD`` (and ``WIFISYNC_NEW_PASSWORD`` for passwd's new
    password); otherwise a prompt on the terminal, twice for a new password.
    """

    def __init__(self, args: argparse.Namespace, stdin: TextIO | None = None) -> None:
        self.from_stdin = bool(getattr(args, "password_stdin", False))
        self.stdin = stdin or sys.stdin

    def current(self) -> str:
        """The master password of the existing vault."""
        return self._get(ENV_PASSWORD, "Master password: ", confirm=False)

    def new(self, env: str = ENV_PASSWORD) -> str:
        """A new master password (asked twice on a terminal)."""
        return self._get(env, "New master password: ", confirm=True)

    def _get(self, env: str, prompt: str, confirm: bool) -> str:
        if self.from_stdin:
            password = self._stdin_line()
        elif env in os.environ:
            password = os.environ[env]
        elif self.stdin.isatty():
            password = _prompt(prompt, confirm)
        else:
            raise WifisyncError(
                "no master password: use --password-stdin, set "
                f"{env}, or run on a terminal")
        if not password:
            raise WifisyncError("the master password must not be empty")
        return password

    def _stdin_line(self) -> str:
        line = self.stdin.readline()
        if not line:
            raise WifisyncError("--password-stdin: no password line on standard input")
        return line.removesuffix("\n").removesuffix("\r")


def _prompt(prompt: str, confirm: bool) -> str:
    try:
        password = getpass.getpass(prompt)
        if confirm and password and getpass.getpass("Repeat it: ") != password:
            raise WifisyncError("the two passwords do not match; nothing changed")
    except EOFError:
        raise WifisyncError("no password entered") from None
    return password


def read_secret(prompt: str, stdin: TextIO | None = None) -> str:
    """A value that must not appear in argv: asked without echo, or one line of stdin."""
    stdin = stdin or sys.stdin
    if stdin.isatty():
        try:
            return getpass.getpass(prompt)
        except EOFError:
            raise WifisyncError("no value entered") from None
    line = stdin.readline()
    if not line:
        raise WifisyncError(f"no line on standard input for {prompt.rstrip(': ')!r}")
    return line.removesuffix("\n").removesuffix("\r")


def field_name(text: str) -> str:
    """argparse type of a field name (``--secret NAME``)."""
    if not text.strip() or "=" in text:
        raise argparse.ArgumentTypeError(f"expected a field NAME, got {text!r}")
    return text.strip()


def field_arg(text: str) -> tuple[str, str]:
    """argparse type of ``--field NAME=VALUE``: anything else is a usage error."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value
