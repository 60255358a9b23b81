"""The daemon: wires the listener and TLS, links, dialer, discovery, pairing, control and store.

It is composition only: the sync node (``wifisync.sync.node``) decides what to send,
relay and close; it lives on the store thread, and ``NodeHub`` is the one hand-over to
it. The daemon never needs the master password: it moves signed ciphertext records,
checks their headers and signatures through the sync core, and learns about local commits
from the CLI over the control socket rather than by polling the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import web

from wifisync.config import Config, load_config
from wifisync.daemon.admission import Admission, AdmissionLimits
from wifisync.daemon.connections import Connections
from wifisync.daemon.control import control_app, serve_control
from wifisync.daemon.inbox import Inbox, replay
from wifisync.daemon.link import Link, Timing
from wifisync.daemon.listener import Gate, bind, serve
from wifisync.daemon.logsetup import set_level
from wifisync.daemon.nodehub import NodeHub
from wifisync.daemon.notify import NotifySocket
from wifisync.daemon.process import DaemonLock, notify_systemd
from wifisync.daemon.status import PeerNews, StatusView, status_line
from wifisync.daemon.storethread import NodeStore, StoreThread
from wifisync.daemon.trust import Trust
from wifisync.daemon.verifier import HelperVerifier
from wifisync.errors import NotInitialisedError, WifisyncError
from wifisync.home import Home
from wifisync.limits import raise_open_file_limit
from wifisync.model.deviceid import short_device_id
from wifisync.model.identity import DeviceIdentity
from wifisync.model.membership import Member
from wifisync.model.records import Membership, Record
from wifisync.net import tls
from wifisync.net.address import SYNC_PATH, format_address, parse_address
from wifisync.store import sigmarks
from wifisync.store.addressbook import AddressBook
from wifisync.store.sqlite import SqliteStore
from wifisync.sync import Replica, SyncSession
from wifisync.sync.node import Action, CutOff, Deletes, LocalPush, SyncNode, TrustChanged
from wifisync.vault.deletebrake import DeleteWatch
from wifisync.vault.unlocked import vault_id_of
from wifisync.wallclock import wall_ms

if TYPE_CHECKING:
    from wifisync.daemon.discovery import DiscoveryManager
    from wifisync.daemon.pairing import PairingService

log = logging.getLogger("wifisync.daemon")

NOTIFY_WAIT = 1.0  # seconds a notify waits for the push it asked for (it goes on after)
MAX_FOUND_SHOWN = 64  # addresses mDNS showed, kept for `status` and `doctor`
INBOX_FOLDER = "inbox"  # in the data folder: received batches not yet stored (inbox.py)
WANTED_OPEN_FILES = 8192  # members, strangers within their caps, store, helpers, the CLI


def open_store(home: Home) -> tuple[SqliteStore, bytes]:
    """The device's store and its vault ID; errors here are the user's to fix."""
    if not home.store_file.exists():
        raise NotInitialisedError("this device holds no vault; run `wifisync init` or "
                                  "`wifisync join` first")
    store = SqliteStore(home.store_file)
    try:
        store.checkpoint_in_background()
        return store, vault_id_of(store)
    except BaseException:
        store.close()
        raise


class Daemon:
    """Everything one running daemon owns; constructing it takes the home's lock."""

    def __init__(self, home: Home, config: Config, listen: str | None = None,
                 peers: list[str] | None = None) -> None:
        self.home = home
        self.config = config
        self.listen = listen or config.daemon.listen
        self._cli_peers = list(peers or [])
        self.static_peers = list(dict.fromkeys([*config.daemon.peers, *self._cli_peers]))
        self.timing = Timing(config.daemon.ping_interval, config.daemon.peer_timeout)
        self.open_files = raise_open_file_limit(WANTED_OPEN_FILES)
        home.ensure_writable()
        self.lock = DaemonLock(home)
        self.lock.acquire()
        try:
            self.identity = DeviceIdentity.load(home.data_dir)
            self.store, self.vault_id = open_store(home)
        except BaseException:
            self.lock.release()
            raise
        self.self_id = self.identity.device_id
        self.store_thread = StoreThread()
        self.verifier = HelperVerifier()  # signature checks, off the store thread's core
        self.replica = Replica(
            self.store, self.vault_id, self.self_id, verifier=self.verifier, now_ms=wall_ms,
            on_stored=functools.partial(sigmarks.mark_accepted, self.store,
                                        sigmarks.mark_key(self.identity)),
            durable=False)  # records from peers, which hold them: no fsync per batch
        replay(home.data_dir / INBOX_FOLDER, self.replica)  # before any peer hears us
        self.inbox = Inbox(home.data_dir / INBOX_FOLDER)
        node_store = NodeStore(self.store, self.identity, self.vault_id)
        self.node = SyncNode(self.self_id, node_store, self._new_session,
                             self.store.max_seq(self.self_id))
        self.hub = NodeHub(self.node, self.store_thread, node_store.local_tip, self._on_news,
                           self._link_synced, self.inbox)
        self.trust = Trust(tls.Credentials.in_dir(home.data_dir), self.vault_id,
                           self.node.members)
        self.addressbook = AddressBook(home.data_dir)
        self.news: dict[bytes, PeerNews] = {}
        self.connections = Connections(
            self_id=self.self_id, vault_id=self.vault_id, trust=self.trust, hub=self.hub,
            timing=self.timing, news=self.news, remember=self._remember_address,
            on_change=self._update_status)
        self.peers = self.connections.peers  # decides when and where to dial
        self.gate = Gate(self.trust.is_member_cert, self._pairing_open)
        self.admission = Admission(AdmissionLimits.for_open_files(self.open_files))
        self.delete_watch = DeleteWatch(config.vault.delete_brake)
        self.pairing = self._pairing_service()
        self.discovery: DiscoveryManager | None = None
        self.port = 0
        self.found_by_mdns: dict[str, float] = {}  # address -> when mDNS last showed it
        self._stop = asyncio.Event()
        self._push_wake = asyncio.Event()
        self._push_progress = asyncio.Condition()
        self._push_asked = self._push_done = self._pushed = 0
        self._pushing = False  # the pusher is at work (not waiting for a wake)
        self._cleanups: list[Callable[[], Awaitable[None]]] = []
        self._last_sync: tuple[float, bytes] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._cut_off = False
        self._ready = False  # SIGHUP waits for the start to finish

    def _pairing_service(self) -> PairingService:
        from wifisync.daemon.pairing import PairingService

        return PairingService(
            store=self.store, identity=self.identity, vault_id=self.vault_id,
            on_joined=self._on_joined, default_timeout=self.config.daemon.pairing_timeout,
            on_window_change=self._on_window_change, on_store=self.store_thread.run)

    # --- start and stop -------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until SIGTERM or SIGINT; returns the exit status."""
        try:
            try:
                await self._start()
                await self._stop.wait()
                log.info("stopping")
            finally:
                await self._shutdown()
        finally:
            self.inbox.close()
            self.store.close()
            self.lock.release()
        log.info("stopped")
        return 0

    def stop(self) -> None:
        """Ask the daemon to drain and exit (signal handlers call this)."""
        self._stop.set()

    async def _start(self) -> None:
        cut_off = self.node.cut_off  # read before the store thread gets any node work
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self._spawn, self._reload, "reload")
        self._cleanups.append(self._cancel_tasks)
        host, port = parse_address(self.listen)
        sock = bind(host, port)
        self.port = sock.getsockname()[1]
        self.connections.start(self.port)
        self._cleanups.append(self.connections.close)
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get(SYNC_PATH, self.connections.accept)
        control = control_app(self._notify, self._status)
        self.pairing.add_routes(app)
        self.pairing.add_control_routes(control)
        self._cleanups.append(self.pairing.async_close)
        runner, peer_listener = await serve(app, self.gate, sock, self.trust.listener.context,
                                            self.admission)
        self._cleanups.append(runner.cleanup)
        self._cleanups.append(peer_listener.close)
        control_runner = await serve_control(control, self.home.control_socket)
        self._cleanups.append(control_runner.cleanup)
        notify = NotifySocket(self.home.notify_socket, self._notify)
        notify.start()
        self._cleanups.append(notify.close)
        self._spawn(self._pusher, "pusher")
        log.info("device %s listening on %s, vault %s, %d member(s)",
                 short_device_id(self.self_id), format_address(host, self.port),
                 self.vault_id.hex()[:8], len(self.trust.members))
        if cut_off:
            me = self.replica.named_devices().get(self.self_id)
            self._stop_syncing(revoked=me is not None and me.revoked)
            return
        await self._start_dialing()
        self._start_watchdog()
        self._ready = True
        notify_systemd(f"READY=1\nSTATUS={self._status_line()}")

    async def _start_dialing(self) -> None:
        """Dial static peers and remembered members; find more by mDNS if asked to."""
        for address in self.static_peers:
            self.peers.add_address(address, static=True)
        for device, address in self.addressbook.all().items():
            if device in self.trust.members and device != self.self_id:
                self.peers.add_address(address, device=device)
        if self.config.daemon.mdns:
            await self._start_discovery()

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

    async def _shutdown(self) -> None:
        notify_systemd("STOPPING=1\nSTATUS=stopping")
        await self.peers.close()  # first: the HTTP server waits for its WebSocket handlers
        for cleanup in reversed(self._cleanups):
            try:
                await cleanup()
            except Exception as exc:
                log.warning("while stopping: %s", exc)
        await self.hub.close()
        await asyncio.get_running_loop().run_in_executor(None, self.store_thread.shutdown)
        await asyncio.get_running_loop().run_in_executor(None, self.verifier.close)
        with contextlib.suppress(FileNotFoundError):
            self.home.control_socket.unlink()

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
            self.timing.ping_interval, self.timing.peer_timeout = d.ping_interval, d.peer_timeout
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
                    await asyncio.wait_for(self.store_thread.run(_nothing), interval)
                except TimeoutError:
                    log.warning("the store thread has not answered for %.0f s; the watchdog "
                                "is not told all is well", interval)
                    continue
                notify_systemd("WATCHDOG=1")
                await asyncio.sleep(interval)

        self._spawn(watchdog, "watchdog")

    def _status_line(self) -> str:
        return status_line(self.port, self.peers.links, self._last_sync)

    def _update_status(self) -> None:
        notify_systemd(f"STATUS={self._status_line()}")

    def _link_synced(self, link: Link) -> None:
        """A link finished an exchange: remember when, and tell systemd."""
        if link.synced_at is not None:
            self.news.setdefault(link.peer_id, PeerNews()).last_sync = link.synced_at
            self._last_sync = (link.synced_at, link.peer_id)
        self._update_status()

    # --- what the sync node tells -----------------------------------------------------------

    def _new_session(self, peer_id: bytes, now: float) -> SyncSession:
        """A fresh session with a peer (the node calls this on the store thread)."""
        return SyncSession(self.replica, peer_id, now=now)

    def _on_news(self, action: Action) -> None:
        """The node's actions that are the daemon's business (on the loop)."""
        match action:
            case TrustChanged(members, gone):
                self._trust_changed(members, gone)
            case CutOff(members, revoked):
                self.trust.members = members  # shown by status; no handshake is trusted any more
                self._stop_syncing(revoked)
            case Deletes(author, items):
                burst = self.delete_watch.seen(author, items, time.monotonic())
                if burst is not None:
                    log.warning("device %s deleted %d items within %.0f s",
                                short_device_id(author), burst, self.delete_watch.rule.window)

    def _trust_changed(self, members: dict[bytes, Member], gone: frozenset[bytes]) -> None:
        """New trust for new handshakes; the node closed the links of devices that left."""
        self.trust.update(members)
        for device in gone:
            log.info("device %s is no longer a member: closing its connections",
                     short_device_id(device))
            with contextlib.suppress(Exception):
                self.addressbook.forget(device)
        self.peers.wake()

    def _stop_syncing(self, revoked: bool) -> None:
        """This device is no longer a current member: say so once, stop dialing and serving."""
        if self._cut_off:
            return
        self._cut_off = True
        why = "was revoked" if revoked else \
            "is not a current member (re-pair it with `wifisync join CODE`)"
        log.warning("this device %s of its vault: it no longer dials or accepts peers "
                    "(`wifisync status` says the same)", why)
        self._spawn(self.peers.close, "stop syncing")

    # --- local commits ---------------------------------------------------------------------

    async def _pusher(self) -> None:
        """Push local records when the CLI notifies: a slice, then wait for the links to drain.

        Attachments come as many 256 KiB records; waiting for the links keeps what is
        queued for sending to a few MiB however much the CLI just committed.
        """
        while True:
            await self._push_wake.wait()
            self._push_wake.clear()
            self._pushing = True
            asked = self._push_asked
            try:
                while True:
                    pushed = await self.hub.local_commit()
                    self._pushed += pushed.records
                    if not pushed.more:  # one store-thread call for a usual commit
                        break
                    for link in list(self.peers.links.values()):
                        await link.drained()
            except Exception:
                log.exception("pushing local records failed")
            self._push_done = asked
            self._pushing = False
            async with self._push_progress:
                self._push_progress.notify_all()

    # --- control socket -------------------------------------------------------------------

    def _notify(self, wait: bool = True) -> Awaitable[int]:
        """Push a few new records now, or wake the pusher now (not once the caller's task
        runs); the awaitable answers at once, or with ``wait`` once what is committed by
        now was handed to the links."""
        self._push_asked += 1
        asked, before = self._push_asked, self._pushed
        if not (wait and self._push_here(asked)):  # `n`: a bulk writer (attachments)
            self._push_wake.set()
        return self._pushed_since(asked, before) if wait else _nothing_pushed()

    def _push_here(self, asked: int) -> bool:
        """While the pusher is idle, push a usual commit (a few records) without waking it.

        The frames are queued to the links before the caller's answer is: they go first.
        """
        if self._pushing or self._push_wake.is_set():
            return False  # the pusher has this ask in hand
        try:
            pushed = self.hub.local_commit_here()
        except Exception:
            log.exception("pushing local records failed")
            pushed = LocalPush(0, False)
        if pushed is None:
            return False
        self._pushed += pushed.records
        if pushed.more:
            return False  # the pusher pushes the rest, the links draining between slices
        self._push_done = asked  # any waiter checks this before it waits
        return True

    async def _pushed_since(self, asked: int, before: int) -> int:
        with contextlib.suppress(TimeoutError):  # a stalled link must not hold the caller
            async with asyncio.timeout(NOTIFY_WAIT), self._push_progress:
                await self._push_progress.wait_for(lambda: self._push_done >= asked)
        return self._pushed - before

    async def _on_joined(self, record: Record) -> None:
        """Pairing wrote a new MEMBER record: push it and trust the new device."""
        log.info("device %s joined the vault",
                 short_device_id(Membership.decode(record.body).device_id))
        await self._notify()

    async def _status(self) -> dict[str, Any]:
        """The live view the CLI's ``status`` and ``doctor`` show (keys documented in README)."""
        host, _port = parse_address(self.listen)
        return StatusView(
            self_id=self.self_id, host=host, port=self.port, members=self.trust.members,
            peers=self.peers, news=self.news, pairing_open=self._pairing_open(),
            mdns_enabled=self.config.daemon.mdns, discovery=self.discovery,
            found_by_mdns=self.found_by_mdns).as_json()

    def _pairing_open(self) -> bool:
        return self.pairing.window_open()

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


def _nothing() -> None:
    """A no-op for the store thread: it answering at all is what the watchdog checks."""


async def _nothing_pushed() -> int:
    """What a notify that does not wait answers."""
    return 0
