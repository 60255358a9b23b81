"""The pairing wire: four small msgpack maps, typed and bounded by the shared codec."""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec

from wifisync.errors import PairingError
from wifisync.model import codec, crypto
from wifisync.model.codec import Bytes16, Bytes32

PROTOCOL_VERSION = 1
SPAKE_MESSAGE_BYTES = 33
MAC_BYTES = 32
MAX_CERT_BYTES = 4096
MAX_NAME_CHARS = 200
MAX_REASON_CHARS = 200
#: Whatever the joiner sends (hello, confirmation) fits in this.
MAX_JOINER_MESSAGE = 8 * 1024
#: The member's welcome carries the member list and the wrapped vault key.
MAX_MEMBER_MESSAGE = 4 * 1024 * 1024
MAX_OFFER_RECORDS = 4096

Spake = Annotated[bytes, msgspec.Meta(min_length=SPAKE_MESSAGE_BYTES,
                                      max_length=SPAKE_MESSAGE_BYTES)]
Mac = Bytes32
assert MAC_BYTES == 32


class _Message(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="t"):
    """A pairing message as it travels: a map whose ``t`` names its type."""


class _Versioned(_Message, kw_only=True, frozen=True):
    """A message that carries the pairing protocol version (as ``v``)."""

    version: int = msgspec.field(default=PROTOCOL_VERSION, name="v")

    def __post_init__(self) -> None:
        if self.version != PROTOCOL_VERSION:
            raise ValueError(f"pairing protocol version {self.version} is not supported")


class Hello(_Versioned, tag="hello", frozen=True):
    """Joiner -> member: which window, which certificate, and the first SPAKE2 message."""

    nameplate: Annotated[int, msgspec.Meta(gt=0, lt=1000)]
    cert_der: Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_CERT_BYTES)] = \
        msgspec.field(name="cert")
    spake: Spake


class SpakeReply(_Message, tag="spake", frozen=True):
    """Member -> joiner: the member's SPAKE2 message."""

    spake: Spake


class Confirm(_Message, tag="confirm", frozen=True):
    """Joiner -> member: proof of the key, and the joiner's name sealed under it."""

    mac: Mac
    sealed_intro: Annotated[bytes, msgspec.Meta(min_length=1, max_length=1024)] = \
        msgspec.field(name="sealed")


class Welcome(_Message, tag="welcome", frozen=True):
    """Member -> joiner: proof of the key, and the vault handed over under it."""

    mac: Mac
    sealed_offer: Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_MEMBER_MESSAGE)] = \
        msgspec.field(name="sealed")


class Refusal(_Message, tag="refusal", frozen=True):
    """Either side: the exchange ends here, with a reason safe to show to anyone."""

    reason: str


Message = Hello | SpakeReply | Confirm | Welcome | Refusal
M = TypeVar("M", Hello, SpakeReply, Confirm, Welcome)
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)


class JoinerIntro(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What the joiner tells about itself once the key is shared.

    ``holds`` is :func:`held_vault_tag` of the vault the joiner already holds (a device
    coming back), so a member of another vault refuses before it writes anything.
    """

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_CHARS)]
    holds: Bytes32 | None = None


def held_vault_tag(vault_id: bytes) -> bytes:
    """What a returning device says of the vault it holds (not the vault ID itself)."""
    return crypto.sha256(b"wifisync/v1/held-vault\x00" + vault_id)


class VaultOffer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a new device needs: the vault ID and the signed member and vault-key records.

    The records are checked later, one by one, by the accept rule.
    """

    vault_id: Bytes16 = msgspec.field(name="vault")
    records: Annotated[tuple[bytes, ...], msgspec.Meta(min_length=1,
                                                       max_length=MAX_OFFER_RECORDS)]


_intro_decoder = msgspec.msgpack.Decoder(JoinerIntro)
_offer_decoder = msgspec.msgpack.Decoder(VaultOffer)


def encode(message: Message) -> bytes:
    """Bytes for one message."""
    if isinstance(message, Refusal) and len(message.reason) > MAX_REASON_CHARS:
        message = Refusal(message.reason[:MAX_REASON_CHARS])
    return codec.encode(message)


def decode(data: bytes, expected: type[M], limit: int) -> M:
    """Parse one message of the expected type; a refusal raises :class:`PairingError`."""
    if len(data) > limit:
        raise PairingError("pairing message too large")
    message = codec.decode(_decoder, data, PairingError, "pairing message")
    if isinstance(message, Refusal):
        raise PairingError(message.reason[:MAX_REASON_CHARS])
    if not isinstance(message, expected):
        raise PairingError(f"expected a pairing {expected.__struct_config__.tag} message")
    return message


def encode_intro(intro: JoinerIntro) -> bytes:
    """Plaintext of the joiner's sealed introduction."""
    return codec.encode(intro)


def decode_intro(data: bytes) -> JoinerIntro:
    """Parse the joiner's introduction."""
    if len(data) > 1024:
        raise PairingError("joiner introduction too large")
    return codec.decode(_intro_decoder, data, PairingError,
                        "introduction from the joining device")


def encode_offer(offer: VaultOffer) -> bytes:
    """Plaintext of the member's sealed vault offer."""
    return codec.encode(offer)


def decode_offer(data: bytes) -> VaultOffer:
    """Parse the member's vault offer (the records are checked later, one by one)."""
    if len(data) > MAX_MEMBER_MESSAGE:
        raise PairingError("vault offer too large")
    return codec.decode(_offer_decoder, data, PairingError, "vault offer from the member")
