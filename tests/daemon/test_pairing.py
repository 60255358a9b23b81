"""The pairing service mounted in a small HTTPS server on 127.0.0.1, driven by the real clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.pairing.helpers import PASSWORD, Household
from wifisync.client.join import joiner_tls_context, pair_url, request_join
from wifisync.client.pairing import request_pairing
from wifisync.daemon.pairing import PairingService
from wifisync.errors import PairingError
from wifisync.home import Home
from wifisync.model.identity import DeviceIdentity
from wifisync.model.membership import current_members
from wifisync.model.records import Membership, Record
from wifisync.net import tls
from wifisync.pairing import messages
from wifisync.pairing.bootstrap import check_offer, store_offer
from wifisync.pairing.code import PairingCode
from wifisync.pairing.handshake import JoinerHandshake
from wifisync.pairing.window import WindowState
from wifisync.store.memory import MemoryStore
from wifisync.vault.unlocked import Vault
from wifisync.wallclock import wall_ms


@dataclass
class Member:
    """A member's pairing service behind a real TLS listener and a control socket."""

    household: Household
    service: PairingService
    home: Home
    port: int
    joined: list[Record] = field(default_factory=list)
    announced: list[int | None] = field(default_factory=list)

    async def join(self, code: PairingCode, joiner: DeviceIdentity | None = None,
                   port: int | None = None) -> messages.VaultOffer:
        return await request_join("127.0.0.1", port or self.port, code,
                                  joiner or self.household.joiner, "laptop")


async def _serve(tmp_path: Path, clock: list[float] | None = None
                 ) -> tuple[Member, list[web.AppRunner]]:
    household = Household.make()
    household.member.save(tmp_path / "member")
    home = Home(tmp_path / "c", tmp_path / "d", tmp_path / "r")
    home.ensure()
    member = Member(household, None, home, 0)  # type: ignore[arg-type]

    async def on_joined(record: Record) -> None:
        member.joined.append(record)

    member.service = PairingService(
        store=household.store, identity=household.member, vault_id=household.vault.vault_id,
        on_joined=on_joined, default_timeout=300, on_window_change=member.announced.append,
        **({"clock": lambda: clock[0]} if clock is not None else {}))
    app, control = web.Application(), web.Application()
    member.service.add_routes(app)
    member.service.add_control_routes(control)
    runner, control_runner = web.AppRunner(app), web.AppRunner(control)
    await runner.setup()
    await control_runner.setup()
    listener = tls.TrustedListener(tls.Credentials.in_dir(tmp_path / "member"),
                                   [household.member.cert_pem], household.vault.vault_id)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=listener.context)
    await site.start()
    await web.UnixSite(control_runner, str(home.control_socket)).start()
    member.port = runner.addresses[0][1]
    return member, [control_runner, runner]


@pytest.fixture
async def member(tmp_path: Path) -> AsyncIterator[Member]:
    m, runners = await _serve(tmp_path)
    yield m
    for runner in runners:
        await runner.cleanup()
    await m.service.async_close()


def wrong(code: PairingCode) -> PairingCode:
    """The same nameplate with other words: a wrong guess at the secret part."""
    words = tuple("tiger" if w != "tiger" else "zebra" for w in code.words)
    return PairingCode(code.nameplate, words)


async def test_right_code_makes_the_joiner_a_member(member: Member) -> None:
    window = member.service.open_window(30)
    assert member.service.window_open()
    offer = await member.join(window.code)
    joiner = member.household.joiner
    checked = check_offer(offer, joiner, wall_ms)
    assert checked.sponsor.device_id == member.household.member.device_id
    assert checked.vault_id == member.household.vault.vault_id
    assert set(checked.members) == {member.household.member.device_id, joiner.device_id}
    assert member.household.member.device_id in current_members(member.household.store)
    assert joiner.device_id in current_members(member.household.store)
    assert [Membership.decode(r.body).device_id for r in member.joined] == [joiner.device_id]
    result = await member.service.outcome(window)
    assert result.state is WindowState.JOINED and result.device_name == "laptop"
    assert not member.service.window_open()
    assert member.announced == [window.code.nameplate, None]
    # The joiner needs no password to hold the vault, and reads it with the password.
    store = MemoryStore()
    store_offer(store, checked, joiner.device_id, wall_ms)
    Vault.unlock(store, joiner, PASSWORD)


async def test_wrong_code_burns_the_window(member: Member) -> None:
    window = member.service.open_window(30)
    with pytest.raises(PairingError, match="wrong pairing code"):
        await member.join(wrong(window.code))
    assert (await member.service.outcome(window)).state is WindowState.FAILED
    assert not member.service.window_open()
    with pytest.raises(PairingError, match="no open pairing window"):
        await member.join(window.code)
    assert len(current_members(member.household.store)) == 1 and member.joined == []


async def test_unknown_nameplate_spends_no_guess(member: Member) -> None:
    window = member.service.open_window(30)
    other = PairingCode(window.code.nameplate % 99 + 1, window.code.words)
    with pytest.raises(PairingError, match="no open pairing window has the number"):
        await member.join(other)
    await member.join(window.code)
    assert (await member.service.outcome(window)).state is WindowState.JOINED


async def test_window_expires_after_its_timeout(member: Member) -> None:
    window = member.service.open_window(0.2)
    result = await asyncio.wait_for(member.service.outcome(window), 5)
    assert result.state is WindowState.EXPIRED
    assert not member.service.window_open()
    assert member.announced == [window.code.nameplate, None]
    with pytest.raises(PairingError, match="no open pairing window"):
        await member.join(window.code)


async def test_expiry_follows_the_injected_clock(tmp_path: Path) -> None:
    now = [1000.0]
    m, runners = await _serve(tmp_path, clock=now)
    try:
        window = m.service.open_window(300)
        now[0] += 299
        assert m.service.window_open()
        now[0] += 1
        assert not m.service.window_open()
        with pytest.raises(PairingError, match="no open pairing window"):
            await m.join(window.code)
    finally:
        for runner in runners:
            await runner.cleanup()
        await m.service.async_close()


async def test_joiner_that_leaves_after_its_hello_burns_the_window(member: Member) -> None:
    window = member.service.open_window(30)
    joiner = member.household.joiner
    handshake = JoinerHandshake(window.code, joiner.cert_der, member.household.member.cert_der,
                                "x")
    async with aiohttp.ClientSession() as session, session.ws_connect(
            pair_url("127.0.0.1", member.port), ssl=joiner_tls_context()) as ws:
        await ws.send_bytes(handshake.hello())
        await ws.receive_bytes(timeout=5)
    result = await asyncio.wait_for(member.service.outcome(window), 5)
    assert result.state is WindowState.FAILED
    with pytest.raises(PairingError):
        await member.join(window.code)


async def test_relay_with_its_own_certificate_fails_even_with_the_right_code(
        member: Member, tmp_path: Path) -> None:
    """A man in the middle relays every message unchanged, but TLS shows its own certificate."""
    mitm = DeviceIdentity.generate()
    mitm.save(tmp_path / "mitm")

    async def relay(request: web.Request) -> web.WebSocketResponse:
        inbound = web.WebSocketResponse()
        await inbound.prepare(request)
        async with aiohttp.ClientSession() as session, session.ws_connect(
                pair_url("127.0.0.1", member.port), ssl=joiner_tls_context()) as outbound:

            async def pipe(src: object, dst: object) -> None:
                async for msg in src:  # type: ignore[attr-defined]
                    await dst.send_bytes(msg.data)  # type: ignore[attr-defined]
                await dst.close()  # type: ignore[attr-defined]

            await asyncio.gather(pipe(inbound, outbound), pipe(outbound, inbound))
        return inbound

    app = web.Application()
    app.router.add_get("/pair", relay)
    runner = web.AppRunner(app)
    await runner.setup()
    context = tls.server_context(tls.Credentials.in_dir(tmp_path / "mitm"), [mitm.cert_pem])
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        window = member.service.open_window(30)
        with pytest.raises(PairingError, match="wrong pairing code"):
            await member.join(window.code, port=runner.addresses[0][1])
        assert (await member.service.outcome(window)).state is WindowState.FAILED
        assert member.joined == []
    finally:
        await runner.cleanup()


async def test_revoked_device_cannot_join_again(member: Member) -> None:
    joiner = member.household.joiner
    member.household.vault.write_member(Membership(joiner.cert_der, "old", revoked=True))
    window = member.service.open_window(30)
    with pytest.raises(PairingError, match="removed from the vault"):
        await member.join(window.code)
    assert (await member.service.outcome(window)).state is WindowState.FAILED


async def test_control_socket_shows_the_code_then_the_outcome(member: Member) -> None:
    codes: asyncio.Queue[str] = asyncio.Queue()
    waiting = asyncio.create_task(request_pairing(member.home, 30, codes.put_nowait))
    code = PairingCode.parse(await asyncio.wait_for(codes.get(), 5))
    await member.join(code)
    outcome = await asyncio.wait_for(waiting, 5)
    assert outcome["outcome"] == "joined" and outcome["name"] == "laptop"
    assert outcome["device"] == member.household.joiner.device_id_text


async def test_control_socket_reports_expiry(member: Member) -> None:
    outcome = await asyncio.wait_for(request_pairing(member.home, 0.2, lambda _c: None), 10)
    assert outcome["outcome"] == "expired"


async def test_leaving_pair_cancels_its_window(member: Member) -> None:
    codes: asyncio.Queue[str] = asyncio.Queue()
    waiting = asyncio.create_task(request_pairing(member.home, 30, codes.put_nowait))
    code = PairingCode.parse(await asyncio.wait_for(codes.get(), 5))
    assert member.service.window_open()
    waiting.cancel()
    for _ in range(200):
        if not member.service.window_open():
            break
        await asyncio.sleep(0.01)
    assert not member.service.window_open()
    with pytest.raises(PairingError):
        await member.join(code)


async def test_closing_the_service_ends_waiting_pair_commands(member: Member) -> None:
    codes: asyncio.Queue[str] = asyncio.Queue()
    waiting = asyncio.create_task(request_pairing(member.home, 30, codes.put_nowait))
    await asyncio.wait_for(codes.get(), 5)
    await member.service.async_close()
    outcome = await asyncio.wait_for(waiting, 5)
    assert outcome["outcome"] == "cancelled"
    with pytest.raises(PairingError):
        member.service.open_window(30)
