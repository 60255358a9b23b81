"""The pairing exchange on both sides, wired together in memory (no sockets)."""

from __future__ import annotations

import subprocess
import sys

import msgpack
import pytest

from wifisync.errors import PairingError
from wifisync.model.identity import DeviceIdentity
from wifisync.pairing import messages
from wifisync.pairing.code import PairingCode
from wifisync.pairing.handshake import (
    JoinerHandshake,
    JoinRequest,
    MemberHandshake,
    WrongCodeError,
)
from wifisync.pairing.messages import Hello, Refusal, VaultOffer

CODE = PairingCode(42, ("maple", "violin"))
OFFER = VaultOffer(b"v" * 16, (b"record one", b"record two"))


@pytest.fixture(scope="module")
def member() -> DeviceIdentity:
    return DeviceIdentity.generate()


@pytest.fixture(scope="module")
def joiner() -> DeviceIdentity:
    return DeviceIdentity.generate()


def exchange(member_code: PairingCode, joiner_code: PairingCode, member: DeviceIdentity,
             joiner: DeviceIdentity, seen_by_joiner: bytes | None = None
             ) -> tuple[JoinRequest, VaultOffer]:
    """Run all four messages; ``seen_by_joiner`` is the TLS certificate the joiner saw."""
    j = JoinerHandshake(joiner_code, joiner.cert_der, seen_by_joiner or member.cert_der,
                        "laptop")
    hello = messages.decode(j.hello(), Hello, messages.MAX_JOINER_MESSAGE)
    m = MemberHandshake(member_code, member.cert_der, hello)
    confirm = j.receive_reply(m.reply())
    request = m.receive_confirm(confirm)
    return request, j.receive_welcome(m.welcome(OFFER))


def test_right_code_hands_the_offer_over(member: DeviceIdentity, joiner: DeviceIdentity
                                         ) -> None:
    request, offer = exchange(CODE, CODE, member, joiner)
    assert request == JoinRequest(joiner.cert_der, joiner.device_id, "laptop")
    assert offer == OFFER


def test_wrong_code_fails_the_members_confirmation(member: DeviceIdentity,
                                                   joiner: DeviceIdentity) -> None:
    with pytest.raises(WrongCodeError):
        exchange(CODE, PairingCode(42, ("maple", "tiger")),
                 member, joiner)


def test_relay_with_its_own_tls_certificate_fails(member: DeviceIdentity,
                                                  joiner: DeviceIdentity) -> None:
    """A man in the middle who knows the code but shows its own certificate over TLS."""
    mitm = DeviceIdentity.generate()
    with pytest.raises(WrongCodeError):
        exchange(CODE, CODE, member, joiner, seen_by_joiner=mitm.cert_der)


def test_swapped_joiner_certificate_fails(member: DeviceIdentity, joiner: DeviceIdentity
                                          ) -> None:
    """A relay that replaces the joiner's certificate in the hello with its own."""
    mitm = DeviceIdentity.generate()
    j = JoinerHandshake(CODE, joiner.cert_der, member.cert_der, "laptop")
    hello = messages.decode(j.hello(), Hello, messages.MAX_JOINER_MESSAGE)
    forged = Hello(hello.nameplate, mitm.cert_der, hello.spake)
    m = MemberHandshake(CODE, member.cert_der, forged)
    with pytest.raises(WrongCodeError):
        m.receive_confirm(j.receive_reply(m.reply()))


def test_joiner_refuses_a_welcome_without_the_members_proof(member: DeviceIdentity,
                                                            joiner: DeviceIdentity) -> None:
    j = JoinerHandshake(CODE, joiner.cert_der, member.cert_der, "laptop")
    m = MemberHandshake(CODE, member.cert_der,
                        messages.decode(j.hello(), Hello, messages.MAX_JOINER_MESSAGE))
    m.receive_confirm(j.receive_reply(m.reply()))
    welcome = msgpack.unpackb(m.welcome(OFFER))
    welcome["mac"] = bytes(32)
    with pytest.raises(WrongCodeError):
        j.receive_welcome(msgpack.packb(welcome))


def test_tampered_offer_is_refused(member: DeviceIdentity, joiner: DeviceIdentity) -> None:
    j = JoinerHandshake(CODE, joiner.cert_der, member.cert_der, "laptop")
    m = MemberHandshake(CODE, member.cert_der,
                        messages.decode(j.hello(), Hello, messages.MAX_JOINER_MESSAGE))
    m.receive_confirm(j.receive_reply(m.reply()))
    welcome = msgpack.unpackb(m.welcome(OFFER))
    sealed = bytearray(welcome["sealed"])
    sealed[-1] ^= 1
    welcome["sealed"] = bytes(sealed)
    with pytest.raises(PairingError):
        j.receive_welcome(msgpack.packb(welcome))


def test_member_sends_nothing_about_the_vault_before_confirmation(
        member: DeviceIdentity, joiner: DeviceIdentity) -> None:
    j = JoinerHandshake(CODE, joiner.cert_der, member.cert_der, "laptop")
    m = MemberHandshake(CODE, member.cert_der,
                        messages.decode(j.hello(), Hello, messages.MAX_JOINER_MESSAGE))
    with pytest.raises(PairingError):
        m.welcome(OFFER)
    assert set(msgpack.unpackb(m.reply())) == {"t", "spake"}


def test_steps_out_of_order_are_refused(member: DeviceIdentity, joiner: DeviceIdentity
                                        ) -> None:
    j = JoinerHandshake(CODE, joiner.cert_der, member.cert_der, "laptop")
    m = MemberHandshake(CODE, member.cert_der,
                        messages.decode(j.hello(), Hello, messages.MAX_JOINER_MESSAGE))
    with pytest.raises(PairingError):
        j.receive_welcome(b"")
    confirm = j.receive_reply(m.reply())
    with pytest.raises(PairingError):
        j.receive_reply(m.reply())
    m.receive_confirm(confirm)
    with pytest.raises(PairingError):
        m.receive_confirm(confirm)


def test_hello_naming_another_window_is_refused(member: DeviceIdentity,
                                                joiner: DeviceIdentity) -> None:
    j = JoinerHandshake(PairingCode(7, CODE.words), joiner.cert_der, member.cert_der, "x")
    hello = messages.decode(j.hello(), Hello, messages.MAX_JOINER_MESSAGE)
    with pytest.raises(PairingError):
        MemberHandshake(CODE, member.cert_der, hello)


def test_hello_with_a_certificate_that_is_not_a_device_is_refused(
        member: DeviceIdentity) -> None:
    with pytest.raises(PairingError):
        MemberHandshake(CODE, member.cert_der, Hello(42, b"not a certificate", b"\x00" * 33))


@pytest.mark.parametrize("body", [
    {"t": "hello", "v": 1, "nameplate": 42, "cert": b"c", "spake": b"s" * 32},
    {"t": "hello", "v": 2, "nameplate": 42, "cert": b"c", "spake": b"s" * 33},
    {"t": "hello", "v": 1, "nameplate": True, "cert": b"c", "spake": b"s" * 33},
    {"t": "hello", "v": 1, "nameplate": 42, "cert": b"c" * 5000, "spake": b"s" * 33},
    {"t": "hello", "v": 1, "nameplate": 42, "cert": b"c", "spake": b"s" * 33, "x": 1},
    {"t": "spake", "spake": b"s" * 33},
    [1, 2, 3],
])
def test_malformed_hello_is_refused(body: object) -> None:
    with pytest.raises(PairingError):
        messages.decode(msgpack.packb(body), Hello, messages.MAX_JOINER_MESSAGE)


def test_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(PairingError, match="too large"):
        messages.decode(b"\x00" * (messages.MAX_JOINER_MESSAGE + 1), Hello,
                        messages.MAX_JOINER_MESSAGE)


def test_refusal_becomes_a_pairing_error_with_its_reason() -> None:
    with pytest.raises(PairingError, match=r"^wrong pairing code$"):
        messages.decode(messages.encode(Refusal("wrong pairing code")), Hello, 1024)


def test_a_daemon_imports_spake2_only_when_a_pairing_begins() -> None:
    """A running daemon seldom pairs: SPAKE2's import (about 30 ms) waits for the first."""
    code = ("import sys; import wifisync.daemon.daemon, wifisync.daemon.pairing; "
            "from wifisync.model.identity import DeviceIdentity; "
            "from wifisync.pairing.code import PairingCode; "
            "from wifisync.pairing.handshake import JoinerHandshake; "
            "before = 'spake2' in sys.modules; i = DeviceIdentity.generate(); "
            "JoinerHandshake(PairingCode(42, ('maple', 'violin')), i.cert_der, i.cert_der, 'x'); "
            "print(before, 'spake2' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, check=True)
    assert r.stdout.split() == ["False", "True"]
