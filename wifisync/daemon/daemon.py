"""The daemon: serves and dials peers, drives one sync session per link, relays, obeys the CLI.

It never needs the master password: it moves signed ciphertext records, checks their
headers and signatures through the sync core, and learns about local commits from
the CLI over the control socket rather than by polling the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import functools
import logging
import math
import os
import signal
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from wifisync.config import Config, load_config
from wifisync.daemon.admission import Admission, AdmissionLimits
from wifisync.daemon.control import control_app, serve_control
from wifisync.daemon.link import CloseCode, Direction, Link, LinkEnd
from wifisync.daemon.listener import Gate, bind, serve
from wifisync.daemon.logsetup import set_level
from wifisync.daemon.peers import PeerManager
from wifisync.daemon.storethread import StoreWorker
from wifisync.daemon.verifier import HelperVerifier
from wifisync.errors import (
    AuthenticationError,
    DaemonError,
    IntegrityError,
    NotInitialisedError,
    WifisyncError,
)
from wifisync.home import Home
from wifisync.limits import raise_open_file_limit
from wifisync.model.deviceid import format_device_id, short_device_id
from wifisync.model.identity import DeviceIdentity, device_id_of_certificate
from wifisync.model.membership import Member, current_members, members
from wifisync.model.records import Kind, Record
from wifisync.net import tls
from wifisync.net.address import SYNC_PATH, format_address, parse_address, url
from wifisync.store import sigmarks
from wifisync.store.addressbook import AddressBook
from wifisync.store.sqlite import SqliteStore
from wifisync.sync import Replica, SyncSession
from wifisync.sync.messages import MAX_FRAME_BYTES
from wifisync.termtext import shown
from wifisync.vault.author import Author
from wifisync.vault.deletebrake import DeleteWatch
from wifisync.vault.revocation import acknowledge
from wifisync.vault.unlocked import vault_id_of
from wifisync.wallclock import wall_ms

if TYPE_CHECKING:
    from wifisync.daemon.discovery import DiscoveryManager
    from wifisync.daemon.pairing import PairingService

log = logging.getLogger("wifisync.daemon")

LISTEN_PORT_HEADER = "Wifisync-Listen-Port"
CLOCK_HEADER = "Wifisync-Time"  # each side's wall clock at the handshake: `doctor` shows skew
PUSH_CHUNK = 500  # local records read per store call when the CLI notifies
PUSH_BYTES = 1024 * 1024  # and at most this much of them
NOTIFY_WAIT = 1.0  # seconds a notify waits for the push it asked for (it goes on after)
MAX_FOUND_SHOWN = 64  # addresses mDNS showed, kept for `status` and `doctor`
WANTED_OPEN_FILES = 8192  # members, strangers within their caps, store, helpers, the CLI
# How each way a link ends is logged: a duplicate is routine, a timeout is worth a look.
END_LEVELS: dict[int, int] = {
    CloseCode.DUPLICATE: logging.DEBUG, CloseCode.TIMEOUT: logging.WARNING,
    CloseCode.PROTOCOL_ERROR: logging.WARNING, CloseCode.TOO_BIG: logging.WARNING,
    CloseCode.UNSUPPORTED: logging.WARNING}


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


def iso_time(t: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC with milliseconds, like every other time wifisync shows."""
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


@dataclass
class PeerNews:
    """What the daemon remembers of a member device between its connections."""

    last_sync: float | None = None
    last_error: str | None = None


def clock_skew(header: str | None) -> float | None:
    """How far the peer's clock is ahead of ours (seconds), from its time header."""
    try:
        their = float(header or "")
    except ValueError:
        return None
    return round(their - time.time(), 3) if math.isfinite(their) else None


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


class Daemon:
    """Everything one running daemon owns."""

    def __init__(self, home: Home, config: Config, listen: str | None = None,
                 peers: list[str] | None = None) -> None:
        self.home = home
        self.config = config
        self.listen = listen or config.daemon.listen
        self._cli_peers = list(peers or [])
        self.static_peers = list(dict.fromkeys([*config.daemon.peers, *self._cli_peers]))
        self.ping_interval = config.daemon.ping_interval
        self.peer_timeout = config.daemon.peer_timeout
        self.worker = StoreWorker()
        self.verifier = HelperVerifier()  # signature checks, off the store thread's core
        self.delete_watch = DeleteWatch(config.vault.delete_brake)
        self.members: dict[bytes, Member] = {}
        self.port = 0
        self._stop = asyncio.Event()
        self._local_seq = 0
        self._push_wake = asyncio.Event()
        self._push_progress = asyncio.Condition()
        self._push_asked = self._push_done = self._pushed = 0
        self._cleanups: list[Callable[[], Awaitable[None]]] = []
        self.pairing: PairingService | None = None
        self.discovery: DiscoveryManager | None = None
        self.news: dict[bytes, PeerNews] = {}
        self.found_by_mdns: dict[str, float] = {}  # address -> when mDNS last showed it
        self._last_sync: tuple[float, bytes] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._handshake_clocks: dict[str, float] = {}  # dialed URL -> the peer's clock skew
        self._ready = False  # SIGHUP waits for the start to finish

    # --- start and stop -------------------------------------------------------------------

    def _open(self) -> None:
        """Identity, store, vault ID and members; errors here are the user's to fix."""
        home = self.home
        self.identity = DeviceIdentity.load(home.data_dir)
        self.self_id = self.identity.device_id
        if not home.store_file.exists():
            raise NotInitialisedError("this device holds no vault; run `wifisync init` or "
                                      "`wifisync join` first")
        self.store = SqliteStore(home.store_file)
        self.vault_id = vault_id_of(self.store)
        self.replica = Replica(
            self.store, self.vault_id, self.self_id, verifier=self.verifier, now_ms=wall_ms,
            on_stored=functools.partial(sigmarks.mark_accepted, self.store,
                                        sigmarks.mark_key(self.identity)))
        self.members = current_members(self.store)
        self._cut_off = False
        self._local_seq = self.store.max_seq(self.self_id)
        self.addressbook = AddressBook(home.data_dir)
        self.creds = tls.Credentials.in_dir(home.data_dir)

    async def run(self) -> int:
        """Serve until SIGTERM or SIGINT; returns the exit status."""
        self._loop = asyncio.get_running_loop()
        self.open_files = raise_open_file_limit(WANTED_OPEN_FILES)
        self.home.ensure_writable()
        lock = DaemonLock(self.home)
        lock.acquire()
        try:
            self._open()
            try:
                await self._start()
                await self._stop.wait()
                log.info("stopping")
            finally:
                await self._shutdown()
        finally:
            with contextlib.suppress(AttributeError):
                self.store.close()
            lock.release()
        log.info("stopped")
        return 0

    def stop(self) -> None:
        """Ask the daemon to drain and exit (signal handlers call this)."""
        self._stop.set()

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self._spawn, self._reload, "reload")
        self._cleanups.append(self._cancel_tasks)
        host, port = parse_address(self.listen)
        sock = bind(host, port)
        self.port = sock.getsockname()[1]
        self.listener = tls.TrustedListener(self.creds, self._trusted_pems(), self.vault_id)
        self._client_ctx = tls.client_context(self.creds, self._trusted_pems())
        clock = aiohttp.TraceConfig()
        clock.on_request_end.append(self._on_handshake_answer)
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=True), trace_configs=[clock])
        self._cleanups.append(self.http.close)
        self.peers = PeerManager(self.self_id, self._dial, self._remember_address)

        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get(SYNC_PATH, self._accept)
        control = control_app(self._notify, self._status)
        self._start_pairing(app, control)
        self.gate = Gate(self._is_member_cert, self._pairing_open)
        self.admission = Admission(AdmissionLimits.for_open_files(self.open_files))
        runner, server, peer_listener = await serve(app, self.gate, sock, self.listener.context,
                                                    self.admission)
        self._cleanups.append(runner.cleanup)
        self._cleanups.append(peer_listener.close)
        self._cleanups.append(self._closer(server))
        control_runner = await serve_control(control, self.home.control_socket)
        self._cleanups.append(control_runner.cleanup)
        self._spawn(self._pusher, "pusher")
        log.info("device %s listening on %s, vault %s, %d member(s)",
                 short_device_id(self.self_id), format_address(host, self.port),
                 self.vault_id.hex()[:8], len(self.members))

        if self.self_id not in self.members:
            self._stop_syncing()
            return
        for address in self.static_peers:
            self.peers.add_address(address, static=True)
        for device, address in self.addressbook.all().items():
            if device in self.members and device != self.self_id:
                self.peers.add_address(address, device=device)
        if self.config.daemon.mdns:
            await self._start_discovery()
        self._start_watchdog()
        self._ready = True
        notify_systemd(f"READY=1\nSTATUS={self._status_line()}")

    def _start_pairing(self, app: web.Application, control: web.Application) -> None:
        from wifisync.daemon.pairing import PairingService

        store = SqliteStore(self.home.store_file)

        async def close_store() -> None:
            store.close()

        self._cleanups.append(close_store)
        self.pairing = PairingService(
            store=store, identity=self.identity, vault_id=self.vault_id,
            on_joined=self._on_joined, default_timeout=self.config.daemon.pairing_timeout,
            on_window_change=self._on_window_change)
        self.pairing.add_routes(app)
        self.pairing.add_control_routes(control)
        self._cleanups.append(self.pairing.async_close)

    def _on_window_change(self, nameplate: int | None) -> None:
        """Announce the open pairing window by mDNS so `join CODE` needs no address."""
        if self.discovery is not None:
            self.discovery.show_pairing(None if nameplate is None else str(nameplate), self.port)

    async def _start_discovery(self) -> None:
        from wifisync.daemon.discovery import DiscoveryManager

        discovery = DiscoveryManager(
            interfaces=list(self.config.daemon.interfaces), port=self.port,
            vault_id=self.vault_id, instance=short_device_id(self.self_id),
            on_found=self._on_found)
        await discovery.async_start()
        self.discovery = discovery
        self._cleanups.append(discovery.async_stop)

    async def _stop_discovery(self) -> None:
        if self.discovery is not None:
            discovery, self.discovery = self.discovery, None
            self._cleanups.remove(discovery.async_stop)
            await discovery.async_stop()

    # --- background tasks: reload, watchdog, systemd status -------------------------------

    def _spawn(self, fn: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        """Run ``fn`` as a task this daemon owns (cancelled at shutdown)."""
        task = asyncio.get_running_loop().create_task(fn(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed: %s", task.get_name(), task.exception())

    async def _cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _reload(self) -> None:
        """SIGHUP: read the config again and apply what can change while running."""
        if not self._ready:
            log.warning("reload ignored: the daemon is still starting")
            return
        try:
            new = load_config(self.home)
        except WifisyncError as exc:
            log.warning("reload refused, the running configuration stays: %s", exc)
            return
        old, self.config = self.config.daemon, new
        d = new.daemon
        changes: list[str] = []
        if d.log_level != old.log_level:
            set_level(d.log_level)
            changes.append(f"log_level {old.log_level} -> {d.log_level}")
        static = list(dict.fromkeys([*d.peers, *self._cli_peers]))
        added = [a for a in static if a not in self.static_peers]
        removed = [a for a in self.static_peers if a not in static]
        self.static_peers = static
        for address in added:
            self.peers.add_address(address, static=True)
        for address in removed:
            self.peers.forget_address(address)
        if added or removed:
            changes.append("peers " + ", ".join([*(f"+{a}" for a in added),
                                                  *(f"-{a}" for a in removed)]))
        if (d.mdns, d.interfaces) != (old.mdns, old.interfaces):
            await self._stop_discovery()
            where = ", ".join(d.interfaces) or "every interface"
            try:
                if d.mdns:
                    await self._start_discovery()
                changes.append(f"mdns {'on ' + where if d.mdns else 'off'}")
            except (WifisyncError, OSError) as exc:
                changes.append(f"mdns stays off: {exc}")
        if (d.ping_interval, d.peer_timeout) != (old.ping_interval, old.peer_timeout):
            self.ping_interval, self.peer_timeout = d.ping_interval, d.peer_timeout
            changes.append(f"ping_interval {d.ping_interval:g} s, peer_timeout "
                           f"{d.peer_timeout:g} s")
        if d.listen != old.listen:
            changes.append(f"listen {d.listen} takes effect at the next restart")
        log.info("reloaded %s: %s", self.home.config_file, "; ".join(changes) or "no change")

    def _start_watchdog(self) -> None:
        """Ping systemd's watchdog while the loop and the store thread answer (``WatchdogSec``)."""
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
            return
        interval = int(usec) / 1e6 / 2

        async def watchdog() -> None:
            while True:
                try:
                    await asyncio.wait_for(self.worker.run(_nothing), interval)
                except TimeoutError:
                    log.warning("the store thread has not answered for %.0f s; the watchdog "
                                "is not told all is well", interval)
                    continue
                notify_systemd("WATCHDOG=1")
                await asyncio.sleep(interval)

        self._spawn(watchdog, "watchdog")

    def _status_line(self) -> str:
        """One line for ``systemctl status``: peers connected and the last sync."""
        links = self.peers.links
        synced = sum(1 for link in links.values() if link.in_sync)
        line = f"listening on port {self.port}; {len(links)} peer(s) connected, {synced} in sync"
        if self._last_sync is not None:
            t, device = self._last_sync
            line += f"; last sync {time.strftime('%H:%M:%S', time.localtime(t))} with " \
                    f"{short_device_id(device)}"
        return line

    def _update_status(self) -> None:
        notify_systemd(f"STATUS={self._status_line()}")

    def link_synced(self, link: Link) -> None:
        """A link finished an exchange: remember when, and tell systemd."""
        if link.synced_at is not None:
            self.news.setdefault(link.peer_id, PeerNews()).last_sync = link.synced_at
            self._last_sync = (link.synced_at, link.peer_id)
        self._update_status()

    @staticmethod
    def _closer(server: asyncio.Server) -> Callable[[], Awaitable[None]]:
        async def close() -> None:
            server.close()
        return close

    async def _shutdown(self) -> None:
        notify_systemd("STOPPING=1\nSTATUS=stopping")
        with contextlib.suppress(AttributeError):
            await self.peers.close()  # first: the HTTP server waits for its WebSocket handlers
        for cleanup in reversed(self._cleanups):
            try:
                await cleanup()
            except Exception as exc:
                log.warning("while stopping: %s", exc)
        await asyncio.get_running_loop().run_in_executor(None, self.worker.shutdown)
        await asyncio.get_running_loop().run_in_executor(None, self.verifier.close)
        with contextlib.suppress(FileNotFoundError):
            self.home.control_socket.unlink()

    # --- membership and trust -------------------------------------------------------------

    def _trusted_pems(self) -> list[bytes]:
        return [tls.der_to_pem(m.cert_der) for m in self.members.values()]

    def _is_member_cert(self, cert_der: bytes) -> bool:
        try:
            device = device_id_of_certificate(cert_der)
        except IntegrityError:
            return False
        member = self.members.get(device)
        return member is not None and member.cert_der == cert_der

    def _stop_syncing(self) -> None:
        """This device is no longer a current member: say so once, stop dialing and serving."""
        if self._cut_off:
            return
        self._cut_off = True
        m = members(self.store).get(self.self_id)
        why = "was revoked" if m is not None and m.revoked else \
            "is not a current member (re-pair it with `wifisync join CODE`)"
        log.warning("this device %s of its vault: it no longer dials or accepts peers "
                    "(`wifisync status` says the same)", why)
        self._loop.create_task(self.peers.close())

    def _membership_changed(self, members: dict[bytes, Member]) -> None:
        """New trust for new handshakes; links of devices no longer members close at once."""
        if self.self_id not in members:
            self.members = members
            self._stop_syncing()
            return
        gone = set(self.members) - set(members)
        self.members = members
        pems = self._trusted_pems()
        self.listener.update(pems)
        self._client_ctx = tls.client_context(self.creds, pems)
        for device in gone:
            log.info("device %s is no longer a member: closing its connections",
                     short_device_id(device))
            self.peers.drop(device, CloseCode.NOT_MEMBER, "not a member")
            with contextlib.suppress(Exception):
                self.addressbook.forget(device)
        for device in set(self.peers.links) - set(members):
            self.peers.drop(device, CloseCode.NOT_MEMBER, "not a member")
        self.peers.wake()

    def _membership_threadsafe(self) -> None:
        """On the worker: acknowledge revocations, re-read members, hand them to the loop."""
        if acknowledge(Author(self.store, self.identity, self.vault_id)):
            self._push_local()  # re-enters here once: nothing more to acknowledge then
            return
        members = current_members(self.store)
        self._loop.call_soon_threadsafe(self._membership_changed, members)

    # --- sessions (worker thread) ---------------------------------------------------------

    def new_session(self, peer_id: bytes) -> SyncSession:
        """A fresh session with a peer (on the worker)."""
        return SyncSession(self.replica, peer_id, now=time.monotonic())

    def after_receive(self, link: Link, out: Any) -> None:
        """Relay what a session applied to every other link; react to membership news."""
        if out.applied:
            records = list(out.applied)
            for other in list(self.peers.links.values()):
                if other is not link:
                    other.push_threadsafe(records)
        if out.revoked:
            for device in out.revoked:
                self._loop.call_soon_threadsafe(
                    self.peers.drop, device, CloseCode.NOT_MEMBER, "revoked")
        if out.membership_changed or out.revoked or out.finished_initial:
            self._membership_threadsafe()  # also acknowledges revocations learned meanwhile
        if out.finished_initial:
            release_memory(self.store)
        self._note_deletes(out.applied)

    def _note_deletes(self, applied: Sequence[Record]) -> None:
        """One line when an author deletes many items within the brake's window."""
        by_author: dict[bytes, int] = {}
        for r in applied:
            if r.header.deleted and r.header.kind == Kind.ITEM:
                by_author[r.header.author] = by_author.get(r.header.author, 0) + 1
        for author, deletes in by_author.items():
            burst = self.delete_watch.seen(author, deletes, time.monotonic())
            if burst is not None:
                log.warning("device %s deleted %d items within %.0f s", short_device_id(author),
                            burst, self.delete_watch.rule.window)

    def _push_local(self) -> int:
        """Push the next slice of this device's records not pushed yet (on the worker)."""
        records = self.store.records_after(self.self_id, self._local_seq, PUSH_CHUNK,
                                           PUSH_BYTES)
        if not records:
            return 0
        self._local_seq = records[-1].header.seq
        for link in list(self.peers.links.values()):
            link.push_threadsafe(records)
        if any(r.header.kind == Kind.MEMBER for r in records):
            self._membership_threadsafe()
        return len(records)

    async def _pusher(self) -> None:
        """Push local records when the CLI notifies: a slice, then wait for the links to drain.

        Attachments come as many 256 KiB records; waiting for the links keeps what is
        queued for sending to a few MiB however much the CLI just committed.
        """
        while True:
            await self._push_wake.wait()
            self._push_wake.clear()
            asked = self._push_asked
            try:
                while n := await self.worker.run(self._push_local):
                    self._pushed += n
                    for link in list(self.peers.links.values()):
                        await link.drained()
            except Exception:
                log.exception("pushing local records failed")
            self._push_done = asked
            async with self._push_progress:
                self._push_progress.notify_all()

    # --- control socket -------------------------------------------------------------------

    async def _notify(self, wait: bool = True) -> int:
        """Wake the pusher; with ``wait``, return once it sent what is committed by now."""
        self._push_asked += 1
        asked, before = self._push_asked, self._pushed
        self._push_wake.set()
        if not wait:
            return 0
        with contextlib.suppress(TimeoutError):  # a stalled link must not hold the caller
            async with asyncio.timeout(NOTIFY_WAIT), self._push_progress:
                await self._push_progress.wait_for(lambda: self._push_done >= asked)
        return self._pushed - before

    async def _on_joined(self, record: Record) -> None:
        """Pairing wrote a new MEMBER record: push it and trust the new device."""
        log.info("device %s joined the vault", short_device_id(
            device_id_of_record_member(record)))
        await self._notify()

    async def _status(self) -> dict[str, Any]:
        """The live view the CLI's ``status`` and ``doctor`` show (keys documented in README)."""
        links = self.peers.links
        host, _port = parse_address(self.listen)
        errors: dict[bytes, str] = {}
        for d in self.peers.dialers.values():
            if d.device is not None and d.last_error:
                errors[d.device] = d.last_error
        peers = [
            {"id": format_device_id(device), "name": self._name_of(device), "connected": True,
             "in_sync": link.in_sync,
             "last_sync": iso_time(link.synced_at or self.news.get(device, PeerNews()).last_sync),
             "records_behind": link.records_behind, "clock_skew": link.clock_skew,
             "address": link.address,
             "direction": link.direction.value, "since": iso_time(link.connected_at),
             "last_seen": iso_time(link.last_seen)}
            for device, link in links.items()
        ]
        away = [  # members not connected now: when they last synced, why not now
            {"id": format_device_id(device), "name": self._name_of(device),
             "last_sync": iso_time(news.last_sync),
             "last_error": errors.get(device) or news.last_error}
            for device in self.members if device != self.self_id and device not in links
            for news in [self.news.get(device, PeerNews())]
        ]
        discovery = self.discovery
        return {
            "pid": os.getpid(),
            "device": format_device_id(self.self_id),
            "listen": format_address(host, self.port),
            "pairing": bool(self.pairing is not None and self.pairing.window_open()),
            "revoked": self.self_id not in self.members,
            "peers": peers,
            "away": away,
            "mdns": {
                "enabled": self.config.daemon.mdns,
                "active": bool(discovery is not None and discovery.active),
                "interfaces": discovery.interface_names() if discovery is not None else [],
                "found": sorted(self.found_by_mdns),
            },
            "dialing": [
                {"address": d.address, "static": d.static,
                 "id": format_device_id(d.device) if d.device else None,
                 "error": d.last_error or None}
                for d in self.peers.dialers.values()
            ],
        }

    async def _on_handshake_answer(self, _session: aiohttp.ClientSession, _ctx: Any,
                                   params: aiohttp.TraceRequestEndParams) -> None:
        """Note the peer's clock from its handshake answer (a trace hook: public aiohttp API)."""
        skew = clock_skew(params.response.headers.get(CLOCK_HEADER))
        if skew is not None:
            self._handshake_clocks[str(params.url)] = skew

    def _name_of(self, device: bytes) -> str:
        member = self.members.get(device)
        return member.name if member is not None else short_device_id(device)

    def _pairing_open(self) -> bool:
        return bool(self.pairing is not None and self.pairing.window_open())

    # --- links ----------------------------------------------------------------------------

    def _remember_address(self, device: bytes, address: str) -> None:
        try:
            self.addressbook.set(device, address)
        except Exception as exc:
            log.warning("cannot remember the address of %s: %s", short_device_id(device), exc)

    def _on_found(self, host: str, port: int) -> None:
        address = format_address(host, port)
        self.found_by_mdns.pop(address, None)  # re-inserted last: the dict stays oldest first
        self.found_by_mdns[address] = time.time()
        while len(self.found_by_mdns) > MAX_FOUND_SHOWN:
            del self.found_by_mdns[next(iter(self.found_by_mdns))]
        if self.peers.add_address(address, discovered=True) is not None:
            self.peers.wake(address)

    async def _run_link(self, link: Link) -> LinkEnd:
        if not self.peers.attach(link):
            end = LinkEnd(CloseCode.GOING_AWAY, "daemon stopping") if self.peers.closing \
                else LinkEnd(CloseCode.DUPLICATE, "duplicate connection")
            await link.ws.close(code=end.code, message=end.reason.encode())
            return end
        log.info("connected to %s (%s, %s)", link.name, link.direction.value, link.address)
        self._update_status()
        try:
            end = await link.run()
        finally:
            self.peers.detach(link)
        level = END_LEVELS.get(end.code, logging.INFO)
        stats = link.session.stats if link.session is not None else None
        log.log(level, "disconnected from %s: %s (%d); records sent %d, received %d, applied %d",
                link.name, shown(end.reason), end.code, stats.records_sent if stats else 0,
                stats.records_received if stats else 0, stats.records_applied if stats else 0)
        if level >= logging.WARNING or end.code == CloseCode.NOT_MEMBER:
            self.news.setdefault(link.peer_id, PeerNews()).last_error = end.reason
        self._update_status()
        return end

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        """``/sync``: the gate let only a current member's certificate through."""
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport \
            else None
        cert = tls.peer_certificate(ssl_object)
        assert cert is not None
        peer_id = device_id_of_certificate(cert)
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=MAX_FRAME_BYTES,
                                   autoclose=True)
        ws.headers[CLOCK_HEADER] = f"{time.time():.3f}"
        await ws.prepare(request)
        remote = request.remote or "?"
        port_text = request.headers.get(LISTEN_PORT_HEADER, "")
        address = remote
        if port_text.isdigit() and 0 < int(port_text) < 65536 and request.remote:
            address = format_address(request.remote, int(port_text))
            if peer_id != self.self_id:
                self._remember_address(peer_id, address)
                self.peers.add_address(address, device=peer_id)
        if peer_id == self.self_id:
            await ws.close(code=CloseCode.NOT_MEMBER, message=b"that is this device")
            return ws
        self.peers.heard_from(peer_id)
        link = Link(self, ws, peer_id, Direction.INBOUND, address, self.self_id)
        link.clock_skew = clock_skew(request.headers.get(CLOCK_HEADER))
        await self._run_link(link)
        return ws

    async def _dial(self, address: str) -> tuple[Link, Callable[[], Awaitable[LinkEnd]]]:
        """Open a link to whatever member answers at ``address``."""
        host, port = parse_address(address)
        sync_url = url("https", host, port, SYNC_PATH)
        try:
            ws = await self.http.ws_connect(
                sync_url, ssl=self._client_ctx,
                server_hostname=tls.member_server_name(self.vault_id), autoping=False,
                compress=0, max_msg_size=MAX_FRAME_BYTES,
                headers={LISTEN_PORT_HEADER: str(self.port), CLOCK_HEADER: f"{time.time():.3f}"})
        except aiohttp.ClientConnectorCertificateError as exc:
            raise AuthenticationError("its certificate is not a member's") from exc
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError,
                aiohttp.ClientConnectorError) as exc:
            if _is_tls_refusal(exc):
                raise AuthenticationError("it does not accept this device's certificate"
                                          ) from exc
            raise
        cert = tls.peer_certificate(ws.get_extra_info("ssl_object"))
        if cert is None or not self._is_member_cert(cert):
            await ws.close()
            raise AuthenticationError("its certificate is not a current member's")
        peer_id = device_id_of_certificate(cert)
        if peer_id == self.self_id:
            await ws.close()
            raise AuthenticationError("that address is this device")
        link = Link(self, ws, peer_id, Direction.OUTBOUND, address, self.self_id)
        link.clock_skew = self._handshake_clocks.pop(sync_url, None)
        return link, lambda: self._run_link(link)


def release_memory(store: SqliteStore) -> None:
    """Keep nothing of a finished sync: SQLite's page cache, and the heap glibc holds on to."""
    store.release_memory()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc only; elsewhere nothing to do


def device_id_of_record_member(record: Record) -> bytes:
    """The device a MEMBER record is about (for log lines)."""
    from wifisync.model.records import Membership

    return Membership.decode(record.body).device_id


def _is_tls_refusal(exc: BaseException) -> bool:
    """Whether a failed dial was the peer's TLS stack refusing our certificate."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        if isinstance(current, ssl.SSLError) and "alert" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


def _nothing() -> None:
    """A no-op for the store thread: it answering at all is what the watchdog checks."""
