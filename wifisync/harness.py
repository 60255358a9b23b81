"""Devices as processes on this machine, for the demo, the tests and the benches.

Each device is a ``--home`` folder driven through the real CLI in a subprocess, a free
loopback port, and at most one real daemon process. Secrets reach children only through
their environment (``WIFISYNC_PASSWORD``) or standard input, never their argv.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wifisync
from wifisync.client.control import daemon_status
from wifisync.daemon.process import SYSTEM_ALLOCATOR
from wifisync.errors import WifisyncError
from wifisync.home import Home
from wifisync.model.crypto import KdfParams
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Kind, Membership
from wifisync.net.address import format_address
from wifisync.store.sqlite import SqliteStore
from wifisync.vault.author import Author
from wifisync.vault.members import write_member
from wifisync.vault.unlocked import META_VAULT_ID, Vault, vault_id_of

PACKAGE_ROOT = Path(wifisync.__file__).resolve().parents[1]
START_TIMEOUT = 10.0  # seconds for a daemon to answer on its control socket
COMMAND_TIMEOUT = 120.0  # seconds for one CLI call


class HarnessError(WifisyncError):
    """A device process did not do what it was asked to in time."""


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now and this process has not handed out."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise HarnessError("no fresh TCP port on 127.0.0.1 after 100 tries")


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition",
             interval: float = 0.01) -> object:
    """Poll ``predicate`` every ``interval`` seconds until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def toml_config(sections: Mapping[str, Mapping[str, object]]) -> str:
    """A config file's text from plain values (strings, numbers, booleans, lists of strings)."""
    def value(v: object) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, str):
            return json.dumps(v)  # a TOML basic string
        if isinstance(v, list | tuple):
            return f"[{', '.join(value(x) for x in v)}]"
        return str(v)

    lines: list[str] = []
    for name, keys in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {value(v)}" for key, v in keys.items())
    return "\n".join(lines) + "\n"


@dataclass
class Cli:
    """Runs ``python -m wifisync.cli.main --home HOME ...`` as a user would."""

    home: Path
    password: str | None = None

    def env(self, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
        """The child's environment: no inherited WIFISYNC_*, the password, then ``extra``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("WIFISYNC_")}
        # This checkout's package, whatever the working directory.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT),
                                                          env.get("PYTHONPATH")]))
        if self.password is not None:
            env["WIFISYNC_PASSWORD"] = self.password
        for k, v in (extra or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def argv(self, *args: str) -> list[str]:
        """The full command line of one CLI call."""
        return [sys.executable, "-m", "wifisync.cli.main", "--home", str(self.home), *args]

    def run(self, *args: str, input: str | None = None,
            env: Mapping[str, str | None] | None = None,
            timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run one command; stdin is ``input`` or empty (never a terminal)."""
        return subprocess.run(
            self.argv(*args), input=input if input is not None else "", capture_output=True,
            text=True, env=self.env(env), timeout=timeout, check=False)

    def ok(self, *args: str, **kw: Any) -> str:
        """Run a command that must succeed; returns its stdout."""
        r = self.run(*args, **kw)
        if r.returncode != 0:
            raise HarnessError(f"wifisync {' '.join(args)} -> {r.returncode}: {r.stderr}")
        return r.stdout


@dataclass
class Device:
    """One device: a CLI on its own home, a loopback port, and at most one daemon process."""

    cli: Cli
    name: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    peers: list[Device] = field(default_factory=list)

    @property
    def home(self) -> Home:
        """The home's folders."""
        return Home.locate(str(self.cli.home))

    @property
    def address(self) -> str:
        """Where its daemon listens."""
        return format_address("127.0.0.1", self.port)

    @property
    def log_file(self) -> Path:
        """The daemon's stderr, beside the home."""
        return self.cli.home.parent / f"{self.name}.daemon.log"

    def log(self) -> str:
        """Everything the daemon logged so far."""
        return self.log_file.read_text() if self.log_file.exists() else ""

    def configure(self, vault: Mapping[str, object] | None = None, **daemon: object) -> None:
        """Write the config: loopback listen, no mDNS, then ``daemon``; ``vault`` if given."""
        sections: dict[str, Mapping[str, object]] = {} if vault is None else {"vault": vault}
        sections["daemon"] = {"listen": self.address, "mdns": False, **daemon}
        self.home.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.home.config_file.write_text(toml_config(sections))

    def start(self, *extra: str, peers: Sequence[Device] | None = None, wait: bool = True,
              timeout: float = START_TIMEOUT, env: Mapping[str, str | None] | None = None
              ) -> float:
        """Start the daemon, its log appended to ``log_file``; when it started (perf_counter).

        ``peers`` (kept in ``self.peers``) are its static peers; ``wait``: until its control
        socket answers; ``env``: added to its environment (None removes a variable), which
        carries no password (a daemon never needs one) and, as the service unit's, sets the
        C allocator (otherwise the daemon starts itself again to set it).
        """
        assert self.proc is None or self.proc.poll() is not None, "already running"
        if peers is not None:
            self.peers = list(peers)
        args = [a for p in self.peers for a in ("--peer", p.address)]
        child_env = self.cli.env({"WIFISYNC_PASSWORD": None, "WIFISYNC_NEW_PASSWORD": None,
                                  "PYTHONMALLOC": SYSTEM_ALLOCATOR, **(env or {})})
        started = time.perf_counter()
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(self.cli.argv("daemon", *args, *extra), env=child_env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        if wait:
            proc = self.proc
            wait_for(lambda: proc.poll() is not None or self.status() is not None, timeout,
                     f"daemon {self.name} to answer")
            if proc.poll() is not None:
                raise HarnessError(f"daemon {self.name} exited:\n{self.log()}")
        return started

    def status(self) -> dict[str, Any] | None:
        """The running daemon's live view (None when it does not answer)."""
        try:
            return daemon_status(self.home)
        except Exception:
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Signal the daemon and wait for it to exit (killed after ``timeout``); its exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(5)

    def peers_connected(self) -> int:
        """How many sessions the daemon holds (0 when it does not answer)."""
        live = self.status()
        return len(live["peers"]) if live else 0

    def connected_to(self, other: Device) -> bool:
        """Whether this daemon holds a session with ``other``."""
        live = self.status()
        other_id = other.device_id
        return bool(live) and any(p["id"] == other_id for p in live["peers"])  # type: ignore[index]

    @property
    def device_id(self) -> str:
        """Formatted device ID."""
        return DeviceIdentity.load(self.home.data_dir).device_id_text

    def add(self, title: str, *fields: str) -> str:
        """``wifisync add`` through the CLI; returns the item ID."""
        args = [a for f in fields for a in ("--field", f)]
        return self.cli.ok("add", title, *args).strip()

    def holds(self, item_id: str) -> bool:
        """Whether this device's store holds a version of the item (no password needed)."""
        store = SqliteStore(self.home.store_file)
        try:
            return bool(store.heads(bytes.fromhex(item_id)))
        finally:
            store.close()

    def record_count(self) -> int:
        """Records in this device's store."""
        store = SqliteStore(self.home.store_file)
        try:
            return store.count_records()
        finally:
            store.close()


def found_vault(device: Device, password: str, kdf: KdfParams) -> bytes:
    """Create the device's identity and vault in this process, as ``init`` would; the vault ID."""
    device.home.ensure()
    identity = DeviceIdentity.generate()
    identity.save(device.home.data_dir)
    store = SqliteStore(device.home.store_file)
    try:
        return Vault.create(store, identity, device.name, password, kdf).vault_id
    finally:
        store.close()


def join_by_library(member: Device, *newcomers: Device) -> None:
    """Pair without the pairing protocol: what ``join`` leaves behind, built with the library.

    Each newcomer gets an identity, the vault ID, and the member's MEMBER and VAULT_KEY
    records; the member first writes every newcomer's MEMBER record. Sync does the rest.
    """
    source = SqliteStore(member.home.store_file)
    try:
        vault_id = vault_id_of(source)
        author = Author(source, DeviceIdentity.load(member.home.data_dir), vault_id)
        for newcomer in newcomers:
            newcomer.home.ensure()
            identity = DeviceIdentity.generate()
            identity.save(newcomer.home.data_dir)
            write_member(author, Membership(identity.cert_der, newcomer.name))
        for newcomer in newcomers:
            target = SqliteStore(newcomer.home.store_file)
            try:
                target.set_meta(META_VAULT_ID, vault_id)
                for kind in (Kind.MEMBER, Kind.VAULT_KEY):
                    for item, _held in source.heads_of_kind(kind):
                        for record in source.versions(item):
                            target.append(record)
            finally:
                target.close()
    finally:
        source.close()


def stop_all(devices: Sequence[Device]) -> None:
    """Kill every daemon still running (a test's or bench's cleanup after a failure)."""
    for device in devices:
        proc, device.proc = device.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
