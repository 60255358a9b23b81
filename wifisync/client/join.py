"""The joining device's side on the network: TLS without a certificate, then the handshake."""

from __future__ import annotations

import os
import ssl

import aiohttp

from wifisync.errors import PairingError
from wifisync.model.identity import DeviceIdentity
from wifisync.net.address import PAIR_PATH, format_address, url
from wifisync.net.tls import SERVER_NAME
from wifisync.pairing import messages
from wifisync.pairing.code import PairingCode
from wifisync.pairing.handshake import JoinerHandshake
from wifisync.pairing.messages import VaultOffer

CONNECT_TIMEOUT = 10.0
MESSAGE_TIMEOUT = 15.0  # the member's reply and welcome (the welcome writes to its store)


def joiner_tls_context() -> ssl.SSLContext:
    """TLS 1.3, no client certificate, no CA check: the PAKE, bound to the cert, authenticates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def pair_url(host: str, port: int) -> str:
    """``wss://HOST:PORT/pair`` (IPv6 in brackets)."""
    return url("wss", host, port, PAIR_PATH)


async def request_join(host: str, port: int, code: PairingCode, identity: DeviceIdentity,
                       name: str, holds: bytes | None = None) -> VaultOffer:
    """Run the exchange with the member at ``host:port``; returns its (sealed) offer.

    The member shows a throwaway certificate to a client that does not know the vault
    (see ``net.tls``); that certificate is what both sides bind into the PAKE. ``holds``:
    the tag of the vault this device already holds, if any (a device coming back).
    """
    where = format_address(host, port)
    timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT,
                                    sock_connect=CONNECT_TIMEOUT)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.ws_connect(
                pair_url(host, port), ssl=joiner_tls_context(), server_hostname=SERVER_NAME,
                max_msg_size=messages.MAX_MEMBER_MESSAGE, compress=0, autoping=True,
                heartbeat=None) as ws:
            ssl_object = ws.get_extra_info("ssl_object")
            member_cert = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            if not member_cert:
                raise PairingError(f"{where} showed no TLS certificate")
            handshake = JoinerHandshake(code, identity.cert_der, member_cert, name, holds)
            await ws.send_bytes(handshake.hello())
            await ws.send_bytes(handshake.receive_reply(await _receive(ws, where)))
            return handshake.receive_welcome(await _receive(ws, where))
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status == 404:
            raise PairingError(f"{where} has no open pairing window") from None
        raise PairingError(f"{where} refused pairing (HTTP {exc.status})") from None
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
            aiohttp.ClientPayloadError) as exc:
        if isinstance(exc, aiohttp.ClientConnectorError):
            errno = exc.os_error.errno
            reason = os.strerror(errno) if errno else str(exc.os_error)
            raise PairingError(f"cannot reach {where}: {reason}") from None
        raise PairingError(f"{where} closed the connection: no pairing window is open there "
                           "(run `wifisync pair` on that device first)") from None
    except aiohttp.ClientError as exc:
        raise PairingError(f"pairing with {where} failed: {exc}") from None
    except TimeoutError:
        raise PairingError(f"{where} did not answer in time") from None


async def _receive(ws: aiohttp.ClientWebSocketResponse, where: str) -> bytes:
    msg = await ws.receive(timeout=MESSAGE_TIMEOUT)
    if msg.type is aiohttp.WSMsgType.BINARY:
        return bytes(msg.data)
    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED):
        raise PairingError(f"{where} ended the pairing without a reason")
    raise PairingError(f"{where} sent something that is not a pairing message")
