"""The pairing exchange on each side, without I/O: messages in, messages out.

Joiner (SPAKE2 side A)                     Member (SPAKE2 side B)
  Hello(nameplate, joiner cert, X)   ->
                                     <-    SpakeReply(Y)
  Confirm(mac_j, seal(name))         ->    checks mac_j: a wrong code burns the window
                                     <-    Welcome(mac_m, seal(vault ID, records))
Both certificate fingerprints (the member's as the joiner saw it in TLS, the joiner's
as sent in the hello) are the SPAKE2 identities and part of the transcript the MACs
cover, so a relay with its own TLS certificate, or one swapping the joiner's
certificate, ends up with different keys and fails confirmation.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
from dataclasses import dataclass
from types import ModuleType

import msgpack

from wifisync.errors import IntegrityError, PairingError
from wifisync.model import crypto
from wifisync.model.identity import device_id_of_certificate
from wifisync.pairing import messages
from wifisync.pairing.code import PairingCode
from wifisync.pairing.messages import Confirm, Hello, JoinerIntro, SpakeReply, VaultOffer, Welcome

CONTEXT = b"wifisync/v1/pairing"
JOINER_TO_MEMBER = CONTEXT + b"/joiner-to-member"
MEMBER_TO_JOINER = CONTEXT + b"/member-to-joiner"


def _spake2() -> ModuleType:
    """The SPAKE2 module, imported when a pairing begins: a daemon seldom pairs, and the
    import was about 30 ms of every daemon's start."""
    return importlib.import_module("spake2")


class WrongCodeError(PairingError):
    """Key confirmation failed: the other side used another code (or is not who TLS showed)."""


def cert_fingerprint(cert_der: bytes) -> bytes:
    """SHA-256 of a DER certificate: what pairing binds into its transcript."""
    return crypto.sha256(cert_der)


def _spake_ids(member_fp: bytes, joiner_fp: bytes) -> dict[str, bytes]:
    return {"idA": CONTEXT + b"/joiner:" + joiner_fp, "idB": CONTEXT + b"/member:" + member_fp}


def _transcript(code: PairingCode, member_fp: bytes, joiner_fp: bytes, joiner_spake: bytes,
                member_spake: bytes) -> bytes:
    return crypto.sha256(msgpack.packb(
        [CONTEXT, code.nameplate, member_fp, joiner_fp, joiner_spake, member_spake],
        use_bin_type=True))


@dataclass(frozen=True, slots=True)
class _Keys:
    """Everything derived from one SPAKE2 key and transcript."""

    member_mac: bytes
    joiner_mac: bytes
    transfer: bytes
    transcript: bytes

    @classmethod
    def derive(cls, spake_key: bytes, transcript: bytes) -> _Keys:
        def mac(purpose: str) -> bytes:
            return hmac.new(crypto.derive_key(spake_key, purpose), transcript,
                            hashlib.sha256).digest()

        return cls(mac("pairing-confirm-member"), mac("pairing-confirm-joiner"),
                   crypto.derive_key(spake_key, "pairing-transfer"), transcript)


def _device_of(cert_der: bytes) -> bytes:
    try:
        return device_id_of_certificate(cert_der)
    except IntegrityError as exc:
        raise PairingError("the joining device sent an unusable certificate") from exc


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """A joiner that proved it knows the code: its certificate, device ID and chosen name."""

    cert_der: bytes
    device_id: bytes
    name: str
    holds: bytes | None = None  # a returning device: the tag of the vault it holds


class MemberHandshake:
    """The member's side, created for the window the hello's nameplate names."""

    def __init__(self, code: PairingCode, member_cert_der: bytes, hello: Hello) -> None:
        if hello.nameplate != code.nameplate:
            raise PairingError("the hello names another pairing window")
        self.joiner_cert = hello.cert_der
        self.joiner_id = _device_of(hello.cert_der)
        member_fp, joiner_fp = cert_fingerprint(member_cert_der), cert_fingerprint(hello.cert_der)
        spake2 = _spake2()
        spake = spake2.SPAKE2_B(code.password, **_spake_ids(member_fp, joiner_fp))
        self._outbound = spake.start()
        try:
            spake_key = spake.finish(hello.spake)
        except spake2.SPAKEError as exc:
            raise PairingError("malformed SPAKE2 message") from exc
        self._keys = _Keys.derive(spake_key, _transcript(
            code, member_fp, joiner_fp, hello.spake, self._outbound))
        self._confirmed = False
        self._welcomed = False

    def reply(self) -> bytes:
        """The member's SPAKE2 message."""
        return messages.encode(SpakeReply(self._outbound))

    def receive_confirm(self, data: bytes) -> JoinRequest:
        """Check the joiner's key confirmation; a mismatch means a wrong code."""
        if self._confirmed:
            raise PairingError("confirmation received twice")
        confirm = messages.decode(data, Confirm, messages.MAX_JOINER_MESSAGE)
        if not hmac.compare_digest(confirm.mac, self._keys.joiner_mac):
            raise WrongCodeError("wrong pairing code")
        try:
            intro = messages.decode_intro(crypto.open_sealed(
                self._keys.transfer, confirm.sealed_intro,
                JOINER_TO_MEMBER + self._keys.transcript))
        except IntegrityError as exc:
            raise PairingError("the joining device's introduction failed authentication") from exc
        self._confirmed = True
        return JoinRequest(self.joiner_cert, self.joiner_id, intro.name, intro.holds)

    def welcome(self, offer: VaultOffer) -> bytes:
        """Prove the key in turn and hand the vault over, sealed under it."""
        if not self._confirmed or self._welcomed:
            raise PairingError("the joiner has not confirmed the key")
        self._welcomed = True
        sealed = crypto.seal(self._keys.transfer, messages.encode_offer(offer),
                             MEMBER_TO_JOINER + self._keys.transcript)
        return messages.encode(Welcome(self._keys.member_mac, sealed))


class JoinerHandshake:
    """The joining device's side, bound to the certificate its TLS connection showed."""

    def __init__(self, code: PairingCode, joiner_cert_der: bytes, member_cert_der: bytes,
                 name: str, holds: bytes | None = None) -> None:
        self.code = code
        self.name = name
        self.holds = holds
        self.joiner_cert = joiner_cert_der
        self._member_fp = cert_fingerprint(member_cert_der)
        self._joiner_fp = cert_fingerprint(joiner_cert_der)
        self._spake2 = _spake2()
        self._spake = self._spake2.SPAKE2_A(code.password,
                                            **_spake_ids(self._member_fp, self._joiner_fp))
        self._outbound = self._spake.start()
        self._keys: _Keys | None = None
        self._done = False

    def hello(self) -> bytes:
        """The first message: nameplate, our certificate, our SPAKE2 message."""
        return messages.encode(Hello(self.code.nameplate, self.joiner_cert, self._outbound))

    def receive_reply(self, data: bytes) -> bytes:
        """Finish SPAKE2 and answer with our key confirmation and sealed name."""
        if self._keys is not None:
            raise PairingError("SPAKE2 reply received twice")
        reply = messages.decode(data, SpakeReply, messages.MAX_JOINER_MESSAGE)
        try:
            spake_key = self._spake.finish(reply.spake)
        except self._spake2.SPAKEError as exc:
            raise PairingError("malformed SPAKE2 message") from exc
        self._keys = _Keys.derive(spake_key, _transcript(
            self.code, self._member_fp, self._joiner_fp, self._outbound, reply.spake))
        intro = messages.encode_intro(JoinerIntro(self.name, self.holds))
        sealed = crypto.seal(self._keys.transfer, intro, JOINER_TO_MEMBER + self._keys.transcript)
        return messages.encode(Confirm(self._keys.joiner_mac, sealed))

    def receive_welcome(self, data: bytes) -> VaultOffer:
        """Check the member's key confirmation, then open the vault offer."""
        if self._keys is None or self._done:
            raise PairingError("welcome received out of order")
        welcome = messages.decode(data, Welcome, messages.MAX_MEMBER_MESSAGE)
        if not hmac.compare_digest(welcome.mac, self._keys.member_mac):
            raise WrongCodeError(
                "the other device could not prove it knows the code; nothing was stored")
        self._done = True
        try:
            plain = crypto.open_sealed(self._keys.transfer, welcome.sealed_offer,
                                       MEMBER_TO_JOINER + self._keys.transcript)
        except IntegrityError as exc:
            raise PairingError("the vault offer failed authentication") from exc
        return messages.decode_offer(plain)
