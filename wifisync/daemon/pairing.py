"""The member's pairing service inside the daemon: windows, the ``/pair`` endpoint, control.

A thin asyncio layer over :class:`~.window.PairingWindows` and
:class:`~.handshake.MemberHandshake`. ``wifisync pair`` opens a window through the
control socket (a WebSocket: the code comes back at once, the outcome when it is
settled, and a closed socket cancels the window); a joining device without a
certificate reaches ``/pair`` on the HTTPS listener only while a window is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from aiohttp import WSMsgType, web

from wifisync.errors import PairingError
from wifisync.model.deviceid import format_device_id, short_device_id
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import ROLE_MEMBER, ROLE_RELAY, Record
from wifisync.net.address import PAIR_PATH
from wifisync.pairing import messages
from wifisync.pairing.bootstrap import vault_offer
from wifisync.pairing.handshake import MemberHandshake, WrongCodeError
from wifisync.pairing.messages import Hello, Refusal, held_vault_tag
from wifisync.pairing.window import (
    FINAL_STATES,
    PairingWindow,
    PairingWindows,
    WindowResult,
    WindowState,
)
from wifisync.store import RecordStore
from wifisync.termtext import shown
from wifisync.vault.author import Author
from wifisync.vault.members import admit

log = logging.getLogger("wifisync.pairing")

CONTROL_PATH = "/pairing"
MESSAGE_TIMEOUT = 10.0  # seconds the member waits for each message of the joiner
SESSION_TIMEOUT = 30.0  # seconds for a whole exchange, whatever happens
MAX_WINDOW_SECONDS = 24 * 3600

T = TypeVar("T")
OnJoined = Callable[[Record], Awaitable[None]]
#: Told the nameplate of the newest open window whenever that changes (None: no window open),
#: so the daemon can announce it by mDNS for `wifisync join CODE` without an address.
OnWindowChange = Callable[[int | None], None]


class StoreRunner(Protocol):
    """Runs a blocking store call where the store lives (the daemon's store thread)."""

    def __call__(self, fn: Callable[..., T], /, *args: Any) -> Awaitable[T]: ...


async def run_here(fn: Callable[..., T], *args: Any) -> T:
    """A :class:`StoreRunner` for a store that may be used on the event loop (tests)."""
    return fn(*args)


class PairingService:
    """Opens pairing windows, runs the member's side of each exchange, admits the joiner."""

    def __init__(self, *, store: RecordStore, identity: DeviceIdentity, vault_id: bytes,
                 on_joined: OnJoined, default_timeout: float,
                 on_window_change: OnWindowChange | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_store: StoreRunner = run_here) -> None:
        self.store = store
        self.on_store = on_store
        self.identity = identity
        self.vault_id = vault_id
        self.on_joined = on_joined
        self.default_timeout = float(default_timeout)
        self.on_window_change = on_window_change
        self.clock = clock
        self.windows = PairingWindows()
        self._announced: int | None = None
        self._outcomes: dict[str, asyncio.Future[WindowResult]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._sessions: set[asyncio.Task[Any]] = set()
        self._closed = False

    # --- windows ----------------------------------------------------------------------------

    def window_open(self) -> bool:
        """Whether a certificate-less client may reach ``/pair`` now."""
        return not self._closed and self.windows.any_open(self.clock())

    def open_window(self, timeout: float | None = None, role: str = ROLE_MEMBER
                    ) -> PairingWindow:
        """A new window with a fresh code; it expires by itself after ``timeout`` seconds.

        ``role`` is what the joiner becomes: a member (holds the key) or a relay.
        """
        if self._closed:
            raise PairingError("the daemon is stopping")
        seconds = self.default_timeout if timeout is None else timeout
        if not (math.isfinite(seconds) and 0 < seconds <= MAX_WINDOW_SECONDS):
            raise PairingError(f"a pairing timeout must be 0-{MAX_WINDOW_SECONDS} seconds")
        window = self.windows.open(self.clock(), seconds)
        window.role = role
        key = str(window.code)
        loop = asyncio.get_running_loop()
        self._outcomes[key] = loop.create_future()
        self._timers[key] = loop.call_later(seconds, self._expire, window)
        log.info("pairing window %d open for %g s", window.code.nameplate, seconds)
        self._announce()
        return window

    async def outcome(self, window: PairingWindow) -> WindowResult:
        """Wait until the window is settled: joined, failed, expired or cancelled."""
        future = self._outcomes.get(str(window.code))
        if future is None:  # settled already
            assert window.result is not None
            return window.result
        return await asyncio.shield(future)

    def cancel(self, window: PairingWindow) -> None:
        """The member stopped waiting: the window, and any exchange under way, ends."""
        window.cancel()
        self._settled(window)

    def _expire(self, window: PairingWindow) -> None:
        now = self.clock()
        if window.state is WindowState.OPEN and now < window.expires_at:
            key = str(window.code)
            self._timers[key] = asyncio.get_running_loop().call_later(
                window.expires_at - now, self._expire, window)
            return
        if window.expire_if_due(now):
            log.info("pairing window %d expired", window.code.nameplate)
        self._settled(window)

    def _settled(self, window: PairingWindow) -> None:
        """Report a window that reached its end to whoever waits for it."""
        if window.state not in FINAL_STATES or window.result is None:
            return
        key = str(window.code)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        future = self._outcomes.pop(key, None)
        if future is not None and not future.done():
            future.set_result(window.result)
        self.windows.sweep(self.clock())
        self._announce()

    def _announce(self) -> None:
        """Tell the daemon which window to announce, when that changed."""
        now = self.clock()
        open_windows = [w for w in self.windows.windows.values() if w.is_open(now)]
        newest = max(open_windows, key=lambda w: w.expires_at).code.nameplate \
            if open_windows else None
        if newest == self._announced or self.on_window_change is None:
            return
        self._announced = newest
        try:
            self.on_window_change(newest)
        except Exception:
            log.exception("pairing: announcing the window failed")

    async def async_close(self) -> None:
        """Cancel every window and exchange (the daemon is stopping)."""
        self._closed = True
        for window in list(self.windows.windows.values()):
            self.cancel(window)
        sessions = list(self._sessions)
        for task in sessions:
            task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self.async_close()

    # --- the HTTPS listener: the member's side of the exchange ------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Mount ``/pair`` on the HTTPS listener."""
        app.router.add_get(PAIR_PATH, self._handle_pair)
        app.on_shutdown.append(self._on_shutdown)

    async def _handle_pair(self, request: web.Request) -> web.StreamResponse:
        if not self.window_open():
            raise web.HTTPNotFound(text="no pairing window is open\n")
        ws = web.WebSocketResponse(max_msg_size=messages.MAX_JOINER_MESSAGE, compress=False,
                                   autoping=True, heartbeat=None)
        await ws.prepare(request)
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            async with asyncio.timeout(SESSION_TIMEOUT):
                await self._exchange(ws, request.remote or "?", _shown_certificate(request)
                                     or self.identity.cert_der)
        except TimeoutError:
            log.info("pairing: exchange with %s took too long", request.remote)
        finally:
            self._sessions.discard(task)
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    async def _exchange(self, ws: web.WebSocketResponse, remote: str, shown_cert: bytes
                        ) -> None:
        try:
            hello = messages.decode(await _receive(ws), Hello, messages.MAX_JOINER_MESSAGE)
        except PairingError as exc:
            await _refuse(ws, str(exc))
            return
        now = self.clock()
        window = self.windows.find(hello.nameplate, now)
        if window is None:
            await _refuse(ws, f"no open pairing window has the number {hello.nameplate}; "
                              "check the code")
            return
        window.claim(now)  # from here on, this window's one guess is spent
        log.info("pairing window %d: exchange with %s started", window.code.nameplate, remote)
        try:
            await self._run_claimed(ws, window, hello, shown_cert)
        except WrongCodeError:
            window.fail("wrong pairing code; the code is now used up")
            log.warning("pairing window %d: wrong code from %s; window closed",
                        window.code.nameplate, remote)
            await _refuse(ws, "wrong pairing code; that code is now used up, "
                              "run `wifisync pair` again for a new one")
        except PairingError as exc:
            window.fail(f"pairing failed: {exc}")
            log.warning("pairing window %d: failed: %s", window.code.nameplate, shown(exc))
            await _refuse(ws, f"pairing failed: {exc}")
        except (TimeoutError, asyncio.CancelledError):
            window.fail("pairing failed: the joining device did not finish in time")
            raise
        finally:
            if window.state is WindowState.CLAIMED:
                window.fail("pairing failed: the joining device went away")
            self._settled(window)

    async def _run_claimed(self, ws: web.WebSocketResponse, window: PairingWindow,
                           hello: Hello, shown_cert: bytes) -> None:
        # The joiner binds the certificate its TLS connection showed: the anonymous one
        # (strangers never see our identity), so that is the one we bind too.
        handshake = MemberHandshake(window.code, shown_cert, hello)
        await ws.send_bytes(handshake.reply())
        joiner = handshake.receive_confirm(await _receive(ws))
        if window.state is not WindowState.CLAIMED:  # cancelled while we waited
            raise PairingError("pairing was cancelled on the member")
        if joiner.holds is not None and joiner.holds != held_vault_tag(self.vault_id):
            raise PairingError("the joining device holds another vault; nothing was changed")
        record = await self.on_store(
            admit, Author(self.store, self.identity, self.vault_id), joiner.cert_der,
            joiner.name, window.role)
        window.joined(joiner.device_id, joiner.name)
        log.info("pairing window %d: device %s (%s) joined", window.code.nameplate,
                 short_device_id(joiner.device_id), shown(joiner.name))
        try:
            await self.on_joined(record)
        except Exception:
            log.exception("pairing: telling the daemon about the new member failed")
        offer = await self.on_store(vault_offer, self.store, self.vault_id)
        await ws.send_bytes(handshake.welcome(offer))

    # --- the control socket: `wifisync pair` -------------------------------------------------

    def add_control_routes(self, app: web.Application) -> None:
        """Mount ``/pairing`` on the control socket."""
        app.router.add_get(CONTROL_PATH, self._handle_control)
        app.on_shutdown.append(self._on_shutdown)

    async def _handle_control(self, request: web.Request) -> web.StreamResponse:
        timeout: float | None = None
        if "timeout" in request.query:
            try:
                timeout = float(request.query["timeout"])
            except ValueError:
                raise web.HTTPBadRequest(text="timeout must be a number of seconds\n") from None
        role = ROLE_RELAY if request.query.get("relay") == "1" else ROLE_MEMBER
        try:
            window = self.open_window(timeout, role)
        except PairingError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        ws = web.WebSocketResponse(heartbeat=None, compress=False)
        await ws.prepare(request)
        await ws.send_json({"code": str(window.code),
                            "expires_in": window.expires_at - self.clock()})
        outcome = asyncio.ensure_future(self.outcome(window))
        gone = asyncio.ensure_future(_until_closed(ws))
        try:
            await asyncio.wait({outcome, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not outcome.done():
                self.cancel(window)
                log.info("pairing window %d cancelled: `wifisync pair` went away",
                         window.code.nameplate)
            gone.cancel()
            await asyncio.gather(outcome, gone, return_exceptions=True)
        if not ws.closed and outcome.done() and not outcome.cancelled():
            with contextlib.suppress(Exception):
                await ws.send_json(result_json(outcome.result()))
            await ws.close()
        return ws


def result_json(result: WindowResult) -> dict[str, Any]:
    """How a window ended, as the control socket reports it to `wifisync pair`."""
    return {
        "outcome": result.state.value,
        "reason": result.reason,
        "device": format_device_id(result.device_id) if result.device_id else None,
        "name": result.device_name,
    }


def _shown_certificate(request: web.Request) -> bytes | None:
    """The certificate this connection showed the joiner (the listener's anonymous one)."""
    from wifisync.net.tls import shown_certificate

    transport = request.transport
    return shown_certificate(transport.get_extra_info("ssl_object") if transport else None)


async def _receive(ws: web.WebSocketResponse) -> bytes:
    """The joiner's next binary message, within :data:`MESSAGE_TIMEOUT`."""
    msg = await ws.receive(timeout=MESSAGE_TIMEOUT)
    if msg.type is WSMsgType.BINARY:
        return bytes(msg.data)
    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
        raise PairingError("the joining device closed the connection")
    if msg.type is WSMsgType.ERROR:
        raise PairingError(f"pairing connection failed: {ws.exception()}")
    raise PairingError("the joining device sent a non-binary message")


async def _refuse(ws: web.WebSocketResponse, reason: str) -> None:
    """Tell the other side why it ends; it may already be gone."""
    with contextlib.suppress(Exception):
        await ws.send_bytes(messages.encode(Refusal(reason)))


async def _until_closed(ws: web.WebSocketResponse) -> None:
    """Return once the client closed its end (it sends nothing else)."""
    while True:
        msg = await ws.receive()
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return
