"""Names and reasons from other devices reach the terminal with their controls escaped.

A member chooses its own name (and a joiner its name, a refusing peer its reason); a
name such as ``ESC ] 0 ; ... BEL`` would retitle the terminal, and a newline would
forge a line of output. Real daemons and real CLI processes throughout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.cli.test_pairing import Pairing
from tests.conftest import Cli
from tests.integration.conftest import Device, wait_for
from wifisync.client.join import joiner_tls_context, pair_url, request_join
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Kind, Membership, member_item_id
from wifisync.net.tls import SERVER_NAME
from wifisync.pairing import messages
from wifisync.pairing.code import PairingCode
from wifisync.pairing.handshake import JoinerHandshake
from wifisync.store.sqlite import SqliteStore
from wifisync.vault.author import Author
from wifisync.vault.unlocked import vault_id_of

EVIL = "evil\x1b]0;pwned\x07\nforged line\u202e"
ESCAPED = "evil\\x1b]0;pwned\\x07\\nforged line\\u202e"


def assert_escaped(text: str) -> None:
    """The hostile name shows as escapes: no control reaches the terminal, no forged line."""
    assert ESCAPED in text, text
    assert not any(c in text for c in "\x1b\x07\u202e"), repr(text)
    assert not any(line.startswith("forged") for line in text.splitlines()), text


def rename(device: Device, name: str) -> None:
    """The device writes a new version of its own MEMBER record, as any member may."""
    store = SqliteStore(device.home.store_file)
    try:
        identity = DeviceIdentity.load(device.home.data_dir)
        body = Membership(identity.cert_der, name).encode()
        Author(store, identity, vault_id_of(store)).write(
            member_item_id(identity.device_id), Kind.MEMBER, lambda _h, _held: body)
    finally:
        store.close()


def test_a_members_hostile_name_is_escaped_by_devices_status_doctor_history_trash_and_join(
        devices: Callable[..., list[Device]], tmp_path: Path) -> None:
    a, b = devices(2)
    rename(b, EVIL)
    b.peers = [a]
    a.start()
    b.start()
    item = b.add("written by the hostile member")
    wait_for(lambda: a.holds(item) and a.record_count() == b.record_count(), 10,
             "the rename and the item to reach a")
    assert_escaped(a.cli.ok("devices"))
    wait_for(lambda: a.connected_to(b), 5, "the session")
    assert_escaped(a.cli.ok("status"))
    assert_escaped(a.cli.run("doctor").stdout)  # the clock check names the peer
    assert_escaped(a.cli.ok("history", item))
    b.cli.ok("rm", item)
    wait_for(lambda: a.record_count() == b.record_count(), 10, "the delete to reach a")
    assert_escaped(a.cli.ok("trash"))
    # A new device pairing with the hostile member is told its name by `join`.
    pairing = Pairing(b, "--timeout", "60")
    newcomer = Device(Cli(tmp_path / "newcomer"), "newcomer")
    newcomer.configure()
    assert_escaped(newcomer.cli.ok("join", pairing.code, "--address", b.address,
                                   "--name", "newcomer"))
    assert pairing.finish()[0] == 0


async def _refuse_after_hello(port: int, code: PairingCode, reason: str) -> None:
    """A joiner that starts the exchange and then sends a refusal with ``reason``."""
    async with aiohttp.ClientSession() as session, session.ws_connect(
            pair_url("127.0.0.1", port), ssl=joiner_tls_context(),
            server_hostname=SERVER_NAME) as ws:
        member_cert = ws.get_extra_info("ssl_object").getpeercert(binary_form=True)
        handshake = JoinerHandshake(code, DeviceIdentity.generate().cert_der, member_cert, "j")
        await ws.send_bytes(handshake.hello())
        await ws.receive(timeout=10)  # the member's SPAKE2 message
        await ws.send_bytes(messages.encode(messages.Refusal(reason)))
        await ws.receive(timeout=10)


def test_pair_shows_a_joiners_name_and_a_refusal_reason_escaped(
        devices: Callable[..., list[Device]]) -> None:
    (a,) = devices(1)
    a.start()
    pairing = Pairing(a, "--timeout", "60")
    asyncio.run(request_join("127.0.0.1", a.port, PairingCode.parse(pairing.code),
                             DeviceIdentity.generate(), EVIL))
    code, out, err = pairing.finish()
    assert code == 0, err
    assert_escaped(out)
    assert_escaped(a.cli.ok("devices"))

    pairing = Pairing(a, "--timeout", "60")
    asyncio.run(_refuse_after_hello(a.port, PairingCode.parse(pairing.code), EVIL))
    code, out, err = pairing.finish()
    assert code == 1
    assert_escaped(err)
    assert len(err.splitlines()) == 1 and err.startswith("wifisync: ")
    assert "\x1b" not in a.log()  # the daemon's log lines are escaped too


async def _close_with_reason(a: Device, b: Device, reason: bytes) -> None:
    """Member B's own connection to A, closed with ``reason`` in the close frame."""
    from wifisync.daemon.link import CloseCode
    from wifisync.net.address import SYNC_PATH
    from wifisync.net.tls import Credentials, client_context, member_server_name

    store = SqliteStore(a.home.store_file)
    try:
        vault_id = vault_id_of(store)
    finally:
        store.close()
    ctx = client_context(Credentials.in_dir(b.home.data_dir),
                         [DeviceIdentity.load(a.home.data_dir).cert_pem])
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"https://127.0.0.1:{a.port}{SYNC_PATH}", ssl=ctx,
            server_hostname=member_server_name(vault_id), autoping=False) as ws:
        await ws.close(code=CloseCode.PROTOCOL_ERROR, message=reason)


def test_a_peers_close_reason_is_escaped_in_the_daemons_log_and_in_status(
        devices: Callable[..., list[Device]]) -> None:
    a, b = devices(2)
    a.start()
    asyncio.run(_close_with_reason(a, b, EVIL.encode()[:120]))
    wait_for(lambda: "disconnected from" in a.log(), 5, "the disconnect to be logged")
    assert "\x1b" not in a.log() and "\nforged" not in a.log()
    assert_escaped(a.cli.ok("status"))  # the peer's last error
