"""The pairing wire: four small msgpack messages, each strictly checked and bounded in size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import msgpack

from wifisync.errors import PairingError
from wifisync.model import crypto
from wifisync.model.records import VAULT_ID_BYTES
from wifisync.model.wirebounds import check_shape

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
_MESSAGE_VALUES = 16  # every message but the offer is one flat map of a few keys


@dataclass(frozen=True, slots=True)
class Hello:
    """Joiner -> member: which window, which certificate, and the first SPAKE2 message."""

    nameplate: int
    cert_der: bytes
    spake: bytes


@dataclass(frozen=True, slots=True)
class SpakeReply:
    """Member -> joiner: the member's SPAKE2 message."""

    spake: bytes


@dataclass(frozen=True, slots=True)
class Confirm:
    """Joiner -> member: proof of the key, and the joiner's name sealed under it."""

    mac: bytes
    sealed_intro: bytes


@dataclass(frozen=True, slots=True)
class Welcome:
    """Member -> joiner: proof of the key, and the vault handed over under it."""

    mac: bytes
    sealed_offer: bytes


@dataclass(frozen=True, slots=True)
class Refusal:
    """Either side: the exchange ends here, with a reason safe to show to anyone."""

    reason: str


Message = Hello | SpakeReply | Confirm | Welcome | Refusal
M = TypeVar("M", Hello, SpakeReply, Confirm, Welcome)


@dataclass(frozen=True, slots=True)
class JoinerIntro:
    """What the joiner tells about itself once the key is shared.

    ``holds`` is :func:`held_vault_tag` of the vault the joiner already holds (a device
    coming back), so a member of another vault refuses before it writes anything.
    """

    name: str
    holds: bytes | None = None


def held_vault_tag(vault_id: bytes) -> bytes:
    """What a returning device says of the vault it holds (not the vault ID itself)."""
    return crypto.sha256(b"wifisync/v1/held-vault\x00" + vault_id)


@dataclass(frozen=True, slots=True)
class VaultOffer:
    """What a new device needs: the vault ID and the signed member and vault-key records."""

    vault_id: bytes
    records: tuple[bytes, ...]


def encode(message: Message) -> bytes:
    """Bytes for one message."""
    body: dict[str, Any]
    match message:
        case Hello():
            body = {"t": "hello", "v": PROTOCOL_VERSION, "nameplate": message.nameplate,
                    "cert": message.cert_der, "spake": message.spake}
        case SpakeReply():
            body = {"t": "spake", "spake": message.spake}
        case Confirm():
            body = {"t": "confirm", "mac": message.mac, "sealed": message.sealed_intro}
        case Welcome():
            body = {"t": "welcome", "mac": message.mac, "sealed": message.sealed_offer}
        case Refusal():
            body = {"t": "refusal", "reason": message.reason[:MAX_REASON_CHARS]}
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    return packed


def decode(data: bytes, expected: type[M], limit: int) -> M:
    """Parse one message of the expected type; a refusal raises :class:`PairingError`."""
    d = _unpack_map(data, limit, "pairing message")
    kind = d.get("t")
    if kind == "refusal":
        reason = d.get("reason")
        if not isinstance(reason, str) or set(d) != {"t", "reason"}:
            raise PairingError("the other device sent a malformed refusal")
        raise PairingError(reason[:MAX_REASON_CHARS])
    parsed = _PARSERS[expected](d)
    assert isinstance(parsed, expected)
    return parsed


def _parse_hello(d: dict[Any, Any]) -> Hello:
    _shape(d, "hello", {"v", "nameplate", "cert", "spake"})
    if d["v"] != PROTOCOL_VERSION:
        raise PairingError(f"pairing protocol version {d['v']!r} is not supported")
    nameplate = d["nameplate"]
    if not isinstance(nameplate, int) or isinstance(nameplate, bool) or not 0 < nameplate < 1000:
        raise PairingError("malformed pairing hello")
    return Hello(nameplate, _bytes(d["cert"], 1, MAX_CERT_BYTES), _spake(d["spake"]))


def _parse_spake(d: dict[Any, Any]) -> SpakeReply:
    _shape(d, "spake", {"spake"})
    return SpakeReply(_spake(d["spake"]))


def _parse_confirm(d: dict[Any, Any]) -> Confirm:
    _shape(d, "confirm", {"mac", "sealed"})
    return Confirm(_bytes(d["mac"], MAC_BYTES, MAC_BYTES), _bytes(d["sealed"], 1, 1024))


def _parse_welcome(d: dict[Any, Any]) -> Welcome:
    _shape(d, "welcome", {"mac", "sealed"})
    return Welcome(_bytes(d["mac"], MAC_BYTES, MAC_BYTES),
                   _bytes(d["sealed"], 1, MAX_MEMBER_MESSAGE))


_PARSERS: dict[type, Any] = {
    Hello: _parse_hello, SpakeReply: _parse_spake, Confirm: _parse_confirm,
    Welcome: _parse_welcome,
}


def encode_intro(intro: JoinerIntro) -> bytes:
    """Plaintext of the joiner's sealed introduction."""
    fields: dict[str, object] = {"name": intro.name}
    if intro.holds is not None:
        fields["holds"] = intro.holds
    packed: bytes = msgpack.packb(fields, use_bin_type=True)
    return packed


def decode_intro(data: bytes) -> JoinerIntro:
    """Parse the joiner's introduction."""
    d = _unpack_map(data, 1024, "joiner introduction")
    name, holds = d.get("name"), d.get("holds")
    if not set(d) <= {"name", "holds"} or not isinstance(name, str) \
            or not 0 < len(name) <= MAX_NAME_CHARS:
        raise PairingError("the joining device sent a malformed name")
    if holds is not None and not (isinstance(holds, bytes) and len(holds) == 32):
        raise PairingError("the joining device sent a malformed vault tag")
    return JoinerIntro(name, holds)


def encode_offer(offer: VaultOffer) -> bytes:
    """Plaintext of the member's sealed vault offer."""
    packed: bytes = msgpack.packb({"vault": offer.vault_id, "records": list(offer.records)},
                                  use_bin_type=True)
    return packed


def decode_offer(data: bytes) -> VaultOffer:
    """Parse the member's vault offer (the records are checked later, one by one)."""
    d = _unpack_map(data, MAX_MEMBER_MESSAGE, "vault offer", MAX_OFFER_RECORDS + 8, 2)
    records = d.get("records")
    if (set(d) != {"vault", "records"} or not isinstance(records, list)
            or not 0 < len(records) <= MAX_OFFER_RECORDS
            or not all(isinstance(r, bytes) for r in records)):
        raise PairingError("the member sent a malformed vault offer")
    return VaultOffer(_bytes(d["vault"], VAULT_ID_BYTES, VAULT_ID_BYTES), tuple(records))


def _unpack_map(data: bytes, limit: int, what: str, values: int = _MESSAGE_VALUES,
                depth: int = 1) -> dict[Any, Any]:
    """A msgpack map, its size, value count and nesting checked before anything is built."""
    if len(data) > limit:
        raise PairingError(f"{what} too large")
    try:
        check_shape(data, values, depth)
        d = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True,
                            max_bin_len=limit, max_str_len=limit, max_array_len=values,
                            max_map_len=values, max_ext_len=0)
    except Exception as exc:  # msgpack raises several unrelated types
        raise PairingError(f"malformed {what}") from exc
    if not isinstance(d, dict):
        raise PairingError(f"malformed {what}")
    return d


def _shape(d: dict[Any, Any], kind: str, keys: set[str]) -> None:
    if d.get("t") != kind or set(d) != keys | {"t"}:
        raise PairingError(f"expected a pairing {kind} message")


def _bytes(v: object, low: int, high: int) -> bytes:
    if not isinstance(v, bytes) or not low <= len(v) <= high:
        raise PairingError("malformed pairing message")
    return v


def _spake(v: object) -> bytes:
    return _bytes(v, SPAKE_MESSAGE_BYTES, SPAKE_MESSAGE_BYTES)
