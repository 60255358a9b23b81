"""Member connections both ways: the ``/sync`` handshake as server and client; each link's life.

An inbound connection passed the listener's gate (a current member's certificate); an
outbound one is checked here after TLS. Both carry the wall clock in a header (``doctor``
shows the skew), the listening port (so the other side can dial back later) and a run ID,
random for each start of the daemon (a link from a new run replaces an old one at once,
``peers.py``). The peer manager decides when and where to dial, and which link to keep;
this module only opens what it asks for and runs each link from attach to detach.
"""

from __future__ import annotations

import logging
import math
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from wifisync.daemon.link import CloseCode, Direction, Link, LinkEnd, LinkHub, Timing
from wifisync.daemon.peers import PeerManager
from wifisync.daemon.status import PeerNews
from wifisync.daemon.trust import Trust, is_tls_refusal
from wifisync.errors import AuthenticationError
from wifisync.model.identity import device_id_of_certificate
from wifisync.net import tls
from wifisync.net.address import SYNC_PATH, format_address, parse_address, url
from wifisync.sync.messages import MAX_FRAME_BYTES
from wifisync.termtext import shown

log = logging.getLogger("wifisync.daemon")

LISTEN_PORT_HEADER = "Wifisync-Listen-Port"
CLOCK_HEADER = "Wifisync-Time"  # each side's wall clock at the handshake: `doctor` shows skew
RUN_HEADER = "Wifisync-Run"  # random for each start of a daemon: tells a restart apart
RUN_ID_CHARS = 16
# How each way a link ends is logged: a duplicate is routine, a timeout is worth a look.
END_LEVELS: dict[int, int] = {
    CloseCode.DUPLICATE: logging.DEBUG, CloseCode.TIMEOUT: logging.WARNING,
    CloseCode.PROTOCOL_ERROR: logging.WARNING, CloseCode.TOO_BIG: logging.WARNING,
    CloseCode.UNSUPPORTED: logging.WARNING}


def run_id_of(header: str | None) -> str:
    """The peer's run ID from its header; empty when missing or not one."""
    text = header or ""
    if len(text) == RUN_ID_CHARS and all(c in string.hexdigits for c in text):
        return text.lower()
    return ""


def clock_skew(header: str | None) -> float | None:
    """How far the peer's clock is ahead of ours (seconds), from its time header."""
    try:
        their = float(header or "")
    except ValueError:
        return None
    return round(their - time.time(), 3) if math.isfinite(their) else None


class Connections:
    """Opens links (accepted and dialed) and runs each; owns the peer manager that dials."""

    def __init__(self, *, self_id: bytes, vault_id: bytes, trust: Trust, hub: LinkHub,
                 timing: Timing, news: dict[bytes, PeerNews],
                 remember: Callable[[bytes, str], None],
                 on_change: Callable[[], None]) -> None:
        self.self_id = self_id
        self.vault_id = vault_id
        self.trust = trust
        self.hub = hub
        self.timing = timing
        self.news = news  # shared with the status view: last sync and last error per device
        self.port = 0  # our listening port, told to the peers we dial
        self.peers = PeerManager(self_id, self.dial, remember)
        self._remember_address = remember
        self._update_status = on_change
        self._http: aiohttp.ClientSession | None = None  # made on the loop, by start()
        self._handshake_clocks: dict[str, float] = {}  # dialed URL -> the peer's clock skew
        self._handshake_runs: dict[str, str] = {}  # dialed URL -> the peer's run ID
        self.run_id = secrets.token_hex(RUN_ID_CHARS // 2)

    def start(self, port: int) -> None:
        """Ready to dial (on the loop): the HTTP client, and our port to announce."""
        self.port = port
        clock = aiohttp.TraceConfig()
        clock.on_request_end.append(self._on_handshake_answer)
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=True), trace_configs=[clock])

    async def close(self) -> None:
        """Close the HTTP client (the peer manager closed every link before)."""
        if self._http is not None:
            await self._http.close()

    async def run_link(self, link: Link) -> LinkEnd:
        if not await self.peers.admit(link):
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
        stats = link.stats
        log.log(level, "disconnected from %s: %s (%d); records sent %d, received %d, applied %d",
                link.name, shown(end.reason), end.code, stats.records_sent if stats else 0,
                stats.records_received if stats else 0, stats.records_applied if stats else 0)
        if level >= logging.WARNING or end.code == CloseCode.NOT_MEMBER:
            self.news.setdefault(link.peer_id, PeerNews()).last_error = end.reason
        self._update_status()
        return end

    async def accept(self, request: web.Request) -> web.StreamResponse:
        """``/sync``: the gate let only a current member's certificate through."""
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport \
            else None
        cert = tls.peer_certificate(ssl_object)
        assert cert is not None
        peer_id = device_id_of_certificate(cert)
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=MAX_FRAME_BYTES,
                                   autoclose=True)
        ws.headers[CLOCK_HEADER] = f"{time.time():.3f}"
        ws.headers[RUN_HEADER] = self.run_id
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
        link = Link(self.hub, ws, peer_id, Direction.INBOUND, address, self.self_id, self.timing)
        link.clock_skew = clock_skew(request.headers.get(CLOCK_HEADER))
        link.peer_run = run_id_of(request.headers.get(RUN_HEADER))
        await self.run_link(link)
        return ws

    async def dial(self, address: str) -> tuple[Link, Callable[[], Awaitable[LinkEnd]]]:
        """Open a link to whatever member answers at ``address``."""
        assert self._http is not None, "dialers start after the HTTP client"
        host, port = parse_address(address)
        sync_url = url("https", host, port, SYNC_PATH)
        try:
            ws = await self._http.ws_connect(
                sync_url, ssl=self.trust.client_context,
                server_hostname=tls.member_server_name(self.vault_id), autoping=False,
                compress=0, max_msg_size=MAX_FRAME_BYTES,
                headers={LISTEN_PORT_HEADER: str(self.port), CLOCK_HEADER: f"{time.time():.3f}",
                         RUN_HEADER: self.run_id})
        except aiohttp.ClientConnectorCertificateError as exc:
            raise AuthenticationError("its certificate is not a member's") from exc
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError,
                aiohttp.ClientConnectorError) as exc:
            if is_tls_refusal(exc):
                raise AuthenticationError("it does not accept this device's certificate"
                                          ) from exc
            raise
        cert = tls.peer_certificate(ws.get_extra_info("ssl_object"))
        if cert is None or not self.trust.is_member_cert(cert):
            await ws.close()
            raise AuthenticationError("its certificate is not a current member's")
        peer_id = device_id_of_certificate(cert)
        if peer_id == self.self_id:
            await ws.close()
            raise AuthenticationError("that address is this device")
        link = Link(self.hub, ws, peer_id, Direction.OUTBOUND, address, self.self_id, self.timing)
        link.clock_skew = self._handshake_clocks.pop(sync_url, None)
        link.peer_run = self._handshake_runs.pop(sync_url, "")
        return link, lambda: self.run_link(link)

    async def _on_handshake_answer(self, _session: aiohttp.ClientSession, _ctx: Any,
                                   params: aiohttp.TraceRequestEndParams) -> None:
        """Note the peer's clock and run ID from its handshake answer (a trace hook: public
        aiohttp API)."""
        headers = params.response.headers
        skew = clock_skew(headers.get(CLOCK_HEADER))
        if skew is not None:
            self._handshake_clocks[str(params.url)] = skew
        run = run_id_of(headers.get(RUN_HEADER))
        if run:
            self._handshake_runs[str(params.url)] = run
