"""Several devices on this machine: each a home, a free loopback port and a real daemon process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import Cli
from wifisync.client.control import daemon_status
from wifisync.home import Home
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Kind, Membership, member_item_id
from wifisync.store.sqlite import SqliteStore
from wifisync.vault.author import Author
from wifisync.vault.unlocked import META_VAULT_ID, vault_id_of

START_TIMEOUT = 10.0


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now and this run has not handed out before."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise AssertionError("no fresh TCP port on 127.0.0.1 after 100 tries")


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition"
             ) -> object:
    """Poll ``predicate`` every few milliseconds until it is truthy (tests only)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


@dataclass
class Device:
    """One device: a CLI on its own home, a port, and at most one daemon process."""

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
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        """The daemon's stderr."""
        return self.cli.home.parent / f"{self.name}.daemon.log"

    def log(self) -> str:
        """Everything the daemon logged so far."""
        return self.log_file.read_text() if self.log_file.exists() else ""

    def configure(self, **daemon: object) -> None:
        """Write a config: fast KDF, no mDNS, loopback listen, short pings, plus ``daemon``."""
        keys = {"listen": self.address, "mdns": False, "ping_interval": 0.5,
                "peer_timeout": 2.0, **daemon}
        lines = ["[vault]", "kdf_opslimit = 1", "[daemon]"]
        for k, v in keys.items():
            if isinstance(v, bool):
                lines.append(f"{k} = {str(v).lower()}")
            elif isinstance(v, str):
                lines.append(f'{k} = "{v}"')
            elif isinstance(v, list):
                lines.append(f"{k} = [{', '.join(repr(x) for x in v)}]".replace("'", '"'))
            else:
                lines.append(f"{k} = {v}")
        path = self.cli.home / "config" / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")

    def start(self, *extra: str, wait: bool = True) -> None:
        """Start the daemon (static peers from ``self.peers``) and wait until it answers."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        args = [a for p in self.peers for a in ("--peer", p.address)]
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(self.cli.argv("daemon", *args, *extra),
                                         env=self.cli.env(), stdout=log, stderr=log)
        if wait:
            wait_for(lambda: self.proc is not None and (self.proc.poll() is not None
                                                        or self.status() is not None),
                     START_TIMEOUT, f"daemon {self.name} to answer")
            assert self.proc.poll() is None, f"daemon {self.name} exited:\n{self.log()}"

    def status(self) -> dict[str, object] | None:
        """The running daemon's live view (None when it does not answer)."""
        try:
            return daemon_status(self.home)
        except Exception:
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the daemon and wait for it to exit; returns its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def connected_to(self, other: Device) -> bool:
        """Whether this daemon holds a session with ``other``."""
        live = self.status()
        other_id = other.device_id
        return bool(live) and any(p["id"] == other_id for p in live["peers"])  # type: ignore[index,union-attr]

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


def join_by_library(member: Device, newcomer: Device) -> None:
    """Pair without the pairing protocol: what ``join`` leaves behind, built with the library.

    The newcomer gets an identity, the vault ID, and the member's MEMBER and VAULT_KEY
    records; the member writes the newcomer's MEMBER record. Sync does the rest.
    """
    home = newcomer.home
    home.ensure()
    identity = DeviceIdentity.generate()
    identity.save(home.data_dir)
    source = SqliteStore(member.home.store_file)
    target = SqliteStore(home.store_file)
    try:
        vault_id = vault_id_of(source)
        author = Author(source, DeviceIdentity.load(member.home.data_dir), vault_id)
        body = Membership(identity.cert_der, newcomer.name).encode()
        author.write(member_item_id(identity.device_id), Kind.MEMBER, lambda _h, _held: body)
        target.set_meta(META_VAULT_ID, vault_id)
        for kind in (Kind.MEMBER, Kind.VAULT_KEY):
            for _item, _held in source.heads_of_kind(kind):
                for record in source.versions(_item):
                    target.append(record)
    finally:
        source.close()
        target.close()


@pytest.fixture
def devices(tmp_path: Path) -> Iterator[Callable[..., list[Device]]]:
    """Factory: ``devices(3)`` gives three paired devices (first one initialised, others joined)
    with configs written but no daemon running. Every daemon is stopped at the end."""
    made: list[Device] = []

    def make(n: int, **daemon: object) -> list[Device]:
        group = [Device(Cli(tmp_path / f"dev{len(made) + i}"), f"dev{len(made) + i}")
                 for i in range(n)]
        for d in group:
            d.configure(**daemon)
        group[0].cli.ok("init", "--name", group[0].name)
        for d in group[1:]:
            join_by_library(group[0], d)
        made.extend(group)
        return group

    yield make
    for d in made:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            with contextlib.suppress(Exception):
                d.proc.wait(5)


def pid_alive(pid: int) -> bool:
    """Whether a process exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
