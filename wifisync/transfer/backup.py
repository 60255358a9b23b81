"""Encrypted backups: the records as stored plus this device's key sealed under the vault key.

A backup holds nothing readable that the store itself does not: records are already
signed and their item payloads encrypted; the wrapped vault key is one of them; the
device key is sealed with a key derived from the vault key, so only the master
password opens it again.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO, Any

import msgpack
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wifisync.errors import (
    AlreadyInitialisedError,
    IntegrityError,
    NotInitialisedError,
    WifisyncError,
)
from wifisync.home import Home
from wifisync.model import crypto
from wifisync.model.identity import DeviceIdentity
from wifisync.model.membership import named_devices
from wifisync.model.records import MAX_RECORD_BYTES, Record, WrappedVaultKey
from wifisync.store import RecordStore
from wifisync.sync.outbound import records_missing
from wifisync.sync.replica import Replica
from wifisync.vault.threadverifier import ThreadVerifier
from wifisync.vault.unlocked import META_VAULT_ID, Vault, read_wrapped_key
from wifisync.wallclock import wall_ms

MAGIC = b"WIFISYNC-BACKUP\x00"
VERSION = 1
MAX_RECORDS = 1 << 31
READ_RECORDS = 2000  # records per store read or transaction
READ_BYTES = 512 * 1024  # and at most this much of them (attachment chunks are large)


class BackupError(WifisyncError):
    """The backup file is not one, is damaged, or cannot be restored here."""


class RevokedDeviceError(WifisyncError):
    """The backup belongs to a device the vault's members have revoked."""


def _aad(vault_id: bytes, cert_der: bytes) -> bytes:
    return MAGIC + vault_id + crypto.sha256(cert_der)


def write_backup(vault: Vault, out: IO[bytes]) -> int:
    """Write every record of the store and this device's sealed key; returns the record count.

    Records are read and written a few MiB at a time (attachments make stores large), in
    one read transaction so the count and the records agree. The bytes are exactly those
    of msgpack packing the whole map at once.
    """
    store = vault.store
    cert = vault.identity.cert_der
    sealed_key = crypto.seal(crypto.derive_key(vault.vault_key, "backup-identity"),
                             vault.identity.key_pem, _aad(vault.vault_id, cert))
    packer = msgpack.Packer(use_bin_type=True)
    out.write(MAGIC + packer.pack_map_header(6))
    with store.transaction():
        # the current wrapped key ahead of the records, so a wrong password is told at once
        head = (("version", VERSION), ("vault", vault.vault_id), ("device", cert),
                ("device_key", sealed_key), ("vault_key", read_wrapped_key(store).encode()))
        for key, value in head:
            out.write(packer.pack(key) + packer.pack(value))
        count = store.count_records()
        out.write(packer.pack("records") + packer.pack_array_header(count))
        written = 0
        for encoded in records_missing(store, {}):  # MEMBER records first, as sync sends them
            out.write(packer.pack(encoded))
            written += 1
    if written != count:
        raise BackupError("the store changed while the backup was written; try again")
    return count


def make_backup(vault: Vault) -> bytes:
    """The whole backup in memory (small vaults, tests)."""
    buf = io.BytesIO()
    write_backup(vault, buf)
    return buf.getvalue()


@dataclass(frozen=True, slots=True)
class RestoredVault:
    """What a restore brought back."""

    identity: DeviceIdentity
    records: int
    items: int


def _damaged(what: str = "not readable") -> BackupError:
    return BackupError(f"the backup file is damaged ({what})")


def _read_head(source: IO[bytes]) -> tuple[msgpack.Unpacker, dict[str, Any]]:
    """Everything before the records, leaving the unpacker at the start of the record list."""
    if source.read(len(MAGIC)) != MAGIC:
        raise BackupError("not a wifisync backup file")
    unpacker = msgpack.Unpacker(source, raw=False, max_bin_len=MAX_RECORD_BYTES,
                                max_str_len=64, max_array_len=MAX_RECORDS, max_map_len=16,
                                read_size=1024 * 1024)
    doc: dict[str, Any] = {}
    try:
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            if key == "records":
                doc["records"] = unpacker.read_array_header()
                break
            doc[key] = unpacker.unpack()
    except Exception as exc:  # msgpack raises several unrelated types
        raise _damaged() from exc
    if doc.get("version") != VERSION:
        raise BackupError("the backup file is damaged or of an unknown version")
    for key, kind in (("vault", bytes), ("device", bytes), ("device_key", bytes),
                      ("records", int)):
        if not isinstance(doc.get(key), kind):
            raise _damaged(key)
    return unpacker, doc


def _identity(doc: dict[str, Any], vault_key: bytes) -> DeviceIdentity:
    try:
        key_pem = crypto.open_sealed(crypto.derive_key(vault_key, "backup-identity"),
                                     doc["device_key"], _aad(doc["vault"], doc["device"]))
        key = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_der_x509_certificate(doc["device"])
    except (IntegrityError, ValueError, x509.InvalidVersion) as exc:
        raise BackupError("the backup's device key does not open (damaged file?)") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise BackupError("the backup's device key is not an Ed25519 key")
    identity = DeviceIdentity(seed=key.private_bytes_raw(),
                              cert_der=cert.public_bytes(serialization.Encoding.DER))
    if identity.cert_der != doc["device"]:
        raise BackupError("the backup's device key and certificate do not match")
    return identity


def _load_records(unpacker: msgpack.Unpacker, doc: dict[str, Any], store: RecordStore) -> None:
    """Take every record into the new store by the accept rule, as sync would, a few MiB
    at a time.

    ``store`` is the new home's store: a failure here removes it again (``creating_store``).
    """
    store.set_meta(META_VAULT_ID, doc["vault"])
    replica = Replica(store, doc["vault"], b"", verifier=ThreadVerifier(), now_ms=wall_ms)
    refused = 0
    batch: list[Record] = []
    size = 0
    try:
        for _ in range(doc["records"]):
            encoded = unpacker.unpack()
            if not isinstance(encoded, bytes):
                raise _damaged("a record")
            record = Record.decode(encoded)
            if record.header.vault != doc["vault"]:
                raise BackupError("the backup mixes records of different vaults")
            batch.append(record)
            size += len(encoded)
            if size >= READ_BYTES or len(batch) >= READ_RECORDS:
                refused += replica.apply(batch).refused
                batch, size = [], 0
        refused += replica.apply(batch).refused
    except IntegrityError as exc:
        raise BackupError(f"the backup file is damaged: {exc}") from exc
    except (BackupError, MemoryError):
        raise
    except Exception as exc:  # msgpack: truncated or malformed
        raise _damaged() from exc
    if refused:
        raise BackupError(f"{refused} record(s) in the backup do not verify (a bad "
                          "signature, or an author that is not a member)")


def _early_key(doc: dict[str, Any], password: str) -> tuple[WrappedVaultKey, bytes] | None:
    """The head's copy of the wrapped key opened with ``password`` before any record is read
    (a wrong password fails in a second, whatever the backup's size); None for backups
    written without it. The copy is unsigned: the key is used only if the verified
    record read from the records is the same."""
    body = doc.get("vault_key")
    if not isinstance(body, bytes):
        return None
    try:
        wrapped = WrappedVaultKey.decode(body)
    except IntegrityError as exc:
        raise _damaged("vault key") from exc
    return wrapped, crypto.unwrap_vault_key(wrapped.wrapped, password, wrapped.kdf)


def restore_backup(source: bytes | IO[bytes], home: Home, password: str) -> RestoredVault:
    """Bring a vault back into an empty home: the master password must open it.

    Records are taken in as from a peer, by the accept rule (:class:`Replica`): each is
    checked before it is stored. Then the password, the device and every item's payload
    (reading the items) are checked; any failure removes the new store, so a refused
    backup leaves the home empty.
    """
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    unpacker, doc = _read_head(stream)
    if DeviceIdentity.exists(home.data_dir) or home.store_file.exists():
        raise AlreadyInitialisedError(
            f"{home.data_dir} already holds a device or vault; restore needs an empty home")
    early = _early_key(doc, password)
    with home.creating_store() as store:
        _load_records(unpacker, doc, store)
        try:
            wrapped = read_wrapped_key(store)
        except (NotInitialisedError, IntegrityError) as exc:
            raise _damaged("no vault key") from exc
        if early is not None and early[0] == wrapped:
            vault_key = early[1]  # the signed record is the one the password already opened
        else:
            vault_key = crypto.unwrap_vault_key(wrapped.wrapped, password, wrapped.kdf)
        identity = _identity(doc, vault_key)
        me = named_devices(store).get(identity.device_id)
        if me is None:
            raise BackupError("the backup's device is not a member of its vault")
        if me.revoked:
            raise RevokedDeviceError(
                f"this backup's device ({identity.short_id}, {me.name!r}) was revoked from "
                "the vault; it cannot sync again. Join the vault as a new device instead")
        vault = Vault(store, identity, vault_key)
        items = len(vault.items())
        if vault.unreadable:  # signed by a member, yet its payload does not open
            raise _damaged(f"{len(vault.unreadable)} item(s) do not decrypt")
        count = store.count_records()
        identity.save(home.data_dir)
    return RestoredVault(identity, count, items)
