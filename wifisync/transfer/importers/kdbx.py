"""KeePass 2 databases (``.kdbx``, KDBX 3 and 4) read with pykeepass."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import IO, Any
from urllib.parse import quote

from wifisync.errors import WifisyncError
from wifisync.transfer.archive import inflate_gzip
from wifisync.transfer.fieldrefs import FieldReferences
from wifisync.transfer.fields import PASSWORD, TOTP, URL, USERNAME
from wifisync.transfer.model import (
    NOTES,
    ImportedItem,
    ImportFormatError,
    ItemDraft,
    ParseResult,
    SourcePasswordError,
    with_files,
)
from wifisync.transfer.text import normalise_newlines

FORMAT = "kdbx"
FAMILY = "keepass"
MAGIC = b"\x03\xd9\xa2\x9a"
MAX_XML_BYTES = 256 * 1024 * 1024  # 10k entries are about 10 MiB of XML
# The file's header sets its key derivation's cost, which runs before the password is
# checked: far beyond what KeePass or KeePassXC make (64 MiB, a few passes, or a few
# million AES rounds by default) is refused rather than run.
MAX_KDF_MEMORY = 4 * 1024**3  # bytes of Argon2 memory
MAX_KDF_WORK = 64 * 1024**3  # Argon2 memory x passes: about a minute on one core
MAX_KDF_LANES = 256
MAX_AES_ROUNDS = 10**9


def sniff(data: bytes) -> bool:
    """KeePass's magic bytes."""
    return data.startswith(MAGIC)


def parse(data: bytes, source_password: str | None = None) -> ParseResult:
    """Every entry outside the recycle bin; groups become path tags, custom strings fields."""
    try:
        from pykeepass import PyKeePass
        from pykeepass.exceptions import CredentialsError
    except ImportError:
        raise WifisyncError("reading KeePass files needs the optional extra: "
                            "pip install 'wifisync[keepass]' (pipx: pipx inject wifisync "
                            "pykeepass)") from None

    if source_password is None:
        raise SourcePasswordError("the KeePass file needs its own password "
                                  "(--source-password-file FILE, or run on a terminal)")
    _check_kdf_cost(data)
    _bound_inflation()
    try:
        kp = PyKeePass(io.BytesIO(data), password=source_password)
    except CredentialsError as exc:
        raise SourcePasswordError("wrong password for the KeePass file") from exc
    except ImportFormatError:
        raise
    except Exception as exc:  # pykeepass/construct raise many unrelated types for bad files
        raise ImportFormatError(f"not a readable KeePass database: {exc}") from exc
    result = ParseResult(FORMAT)
    groups = _GroupTags(kp.recyclebin_group)
    refs = FieldReferences(kp)
    for n, entry in enumerate(kp.entries, start=1):
        try:
            in_bin, tag = groups.of(entry)
            if in_bin:
                continue
            item = _item(refs, entry, tag)
        except ImportFormatError:
            raise  # over a bound: the whole file is refused
        except Exception as exc:  # one broken entry must not stop the others
            result.problem(f"entry {n}", f"unreadable entry: {exc}")
            continue
        result.items.append(with_files(item, _binaries(entry, f"entry {n}", result)))
    return result


def _check_kdf_cost(data: bytes) -> None:
    """Refuse a database whose header asks for an absurd key-derivation cost."""
    from pykeepass.kdbx_parsing.kdbx import KDBX

    try:
        header = KDBX.subcons[0].parse(data).value
        dynamic = header.dynamic_header
        if header.major_version >= 4:
            params = {k: v.value for k, v in dynamic.kdf_parameters.data.dict.items()}
        else:
            params = {"R": dynamic.transform_rounds.data}
    except Exception:  # a malformed header is pykeepass's to report, in its own words
        return
    memory, passes, lanes, rounds = (params.get(k, 0) for k in ("M", "I", "P", "R"))
    if not all(isinstance(v, int) for v in (memory, passes, lanes, rounds)):
        raise ImportFormatError("the KeePass file's key-derivation parameters are malformed")
    if memory > MAX_KDF_MEMORY or memory * passes > MAX_KDF_WORK or lanes > MAX_KDF_LANES \
            or rounds > MAX_AES_ROUNDS:
        raise ImportFormatError(
            "the KeePass file asks for a key-derivation cost far beyond what KeePass makes "
            f"(Argon2 {memory // 1024**2} MiB x {passes} passes, {lanes} lanes; "
            f"{rounds} AES rounds); nothing was imported")


def _binaries(entry: Any, position: str, result: ParseResult
              ) -> list[tuple[str, Callable[[], IO[bytes]]]]:
    """An entry's attachments (KeePass holds them in the database, in memory already)."""
    found: list[tuple[str, Callable[[], IO[bytes]]]] = []
    for attachment in entry.attachments:
        try:
            data = attachment.data
            if not isinstance(data, bytes):
                raise ValueError("no data")
        except Exception as exc:  # a reference to a binary the file does not hold
            result.problem(f"{position} ({entry.title!r})",
                           f"attachment {attachment.filename!r} unreadable ({exc}): not imported")
            continue
        found.append((str(attachment.filename or "attachment"),
                      functools.partial(io.BytesIO, data)))
    return found


def _bound_inflation() -> None:
    """Make pykeepass inflate a database's gzip-compressed XML only up to a bound."""
    from pykeepass.kdbx_parsing.common import Decompressed

    def decode(_self: Any, data: bytes, _con: Any, _path: Any) -> bytes:
        return inflate_gzip(data, MAX_XML_BYTES, "the KeePass database's XML")

    Decompressed._decode = decode


class _GroupTags:
    """Per group (computed once): whether it is in the recycle bin, and its path tag."""

    def __init__(self, recycle_bin: Any) -> None:
        self.bin_uuid = None if recycle_bin is None else recycle_bin.uuid
        self.known: dict[Any, tuple[bool, str | None]] = {}

    def of(self, entry: Any) -> tuple[bool, str | None]:
        element = entry._element.getparent()
        if element not in self.known:
            group = entry.group
            in_bin, names = False, []
            while group is not None:
                if self.bin_uuid is not None and group.uuid == self.bin_uuid:
                    in_bin = True
                if not group.is_root_group and group.name:
                    names.append(group.name)
                group = group.parentgroup
            self.known[element] = (in_bin, "/".join(reversed(names)) or None)
        return self.known[element]


def _value(refs: FieldReferences, raw: str | None) -> str:
    """A field's text with KeePass field references (``{REF:...}``) resolved."""
    if not raw:
        return ""
    if "{REF:" in raw:
        raw = refs.resolve(raw)
    return normalise_newlines(raw)


#: Extra URLs are kept by KeePassXC and KeePass2Android as attributes ``KP2A_URL``,
#: ``KP2A_URL_1``, ...; they become our ``url 2``, ``url 3``, ...


def _strings(entry: Any) -> tuple[dict[str, str], set[str]]:
    """An entry's string fields and which are protected, in one pass over its XML."""
    values: dict[str, str] = {}
    protected: set[str] = set()
    for element in entry._element.findall("String"):
        key = element.findtext("Key")
        value = element.find("Value")
        if key is None or value is None:
            continue
        values[key] = value.text or ""
        if value.get("Protected") == "True":
            protected.add(key)
    return values, protected


#: KeePass 2.47+ keeps TOTP as TimeOtp-* strings; KeeTrayTOTP as "TOTP Seed" and
#: "TOTP Settings" ("PERIOD;DIGITS"). Either becomes an otpauth URI in ``totp``.
TIMEOTP_ALGORITHMS = {"HMAC-SHA-1": "SHA1", "HMAC-SHA-256": "SHA256", "HMAC-SHA-512": "SHA512"}


def _native_totp(refs: FieldReferences, strings: dict[str, str]) -> str:
    """An otpauth URI from KeePass's or KeeTrayTOTP's own TOTP strings ("" when none)."""
    secret = _value(refs, strings.get("TimeOtp-Secret-Base32", ""))
    if secret:
        params = {"digits": strings.get("TimeOtp-Length", ""),
                  "period": strings.get("TimeOtp-Period", ""),
                  "algorithm": TIMEOTP_ALGORITHMS.get(strings.get("TimeOtp-Algorithm", ""), "")}
        for key in ("TimeOtp-Secret-Base32", "TimeOtp-Length", "TimeOtp-Period",
                    "TimeOtp-Algorithm"):
            strings.pop(key, None)
    else:
        secret = _value(refs, strings.get("TOTP Seed", ""))
        if not secret:
            return ""
        period, _, digits = strings.get("TOTP Settings", "").partition(";")
        if not digits.isdigit():  # "30;S" is Steam's encoding: keep the strings as they are
            return ""
        params = {"period": period, "digits": digits}
        strings.pop("TOTP Seed", None)
        strings.pop("TOTP Settings", None)
    query = "&".join(f"{k}={quote(v)}" for k, v in params.items() if v)
    return f"otpauth://totp/?secret={quote(''.join(secret.split()))}" + (
        f"&{query}" if query else "")


def _item(refs: FieldReferences, entry: Any, group_tag: str | None) -> ImportedItem:
    strings, protected = _strings(entry)
    draft = ItemDraft(_value(refs, strings.pop("Title", "")), "login")
    draft.tag(group_tag)
    for tag in (entry._element.findtext("Tags") or "").replace(",", ";").split(";"):
        draft.tag(tag)
    draft.put(USERNAME, _value(refs, strings.pop("UserName", "")))
    draft.put(PASSWORD, _value(refs, strings.pop("Password", "")), hidden=True)
    draft.put(URL, _value(refs, strings.pop("URL", "")))
    draft.put(TOTP, _value(refs, strings.pop("otp", "")) or _native_totp(refs, strings),
              hidden=True)
    notes = _value(refs, strings.pop("Notes", ""))
    for key in sorted(k for k in strings if k.split("_", 2)[:2] == ["KP2A", "URL"]):
        draft.put(URL, _value(refs, strings.pop(key)))
    for key, raw in strings.items():
        draft.put(key, _value(refs, raw), hidden=key in protected, custom=True)
    if entry.expires and entry.expiry_time is not None:
        draft.put("expires", entry.expiry_time.isoformat(), custom=True)
    draft.put(NOTES, notes)
    if not any(draft.has(n) for n in (USERNAME, PASSWORD, URL, TOTP)):
        draft.type = "note"
    return draft.build(entry.uuid.hex if entry.uuid else None)
