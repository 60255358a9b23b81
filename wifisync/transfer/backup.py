"""Encrypted backups: the records as stored plus this device's key sealed under the vault key.

A backup holds nothing readable that the store itself does not: records are already
signed and their item payloads encrypted; the wrapped vault key is one of them; the
device key is sealed with a key derived from the vault key, so only the master
password opens it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .. import crypto
from ..errors import AlreadyInitialisedError, IntegrityError, WifisyncError
from ..home import Home
from ..identity import DeviceIdentity
from ..membership import members
from ..records import Record
from ..store import MemoryStore, RecordStore
from ..vault import META_VAULT_ID, Vault, read_wrapped_key

MAGIC = b"WIFISYNC-BACKUP\x00"
VERSION = 1
MAX_BACKUP_BYTES = 1 << 31


class BackupError(WifisyncError):
    """The backup file is not one, is damaged, or cannot be restored here."""


class RevokedDeviceError(WifisyncError):
    """The backup belongs to a device the vault's members have revoked."""


def _aad(vault_id: bytes, cert_der: bytes) -> bytes:
    return MAGIC + vault_id + crypto.sha256(cert_der)


def make_backup(vault: Vault) -> bytes:
    """Every record of the store, and this device's key sealed under the vault key."""
    store = vault.store
    with store.transaction():
        records = [store.get_record(rid) for rid in store.record_ids()]
    held = sorted((r for r in records if r is not None),
                  key=lambda r: (r.header.author, r.header.seq))
    cert = vault.identity.cert_der
    sealed_key = crypto.seal(crypto.derive_key(vault.vault_key, "backup-identity"),
                             vault.identity.key_pem, _aad(vault.vault_id, cert))
    body: bytes = msgpack.packb({"version": VERSION, "vault": vault.vault_id, "device": cert,
                          "device_key": sealed_key, "records": [r.encoded for r in held]},
                         use_bin_type=True)
    return MAGIC + body


@dataclass(frozen=True, slots=True)
class RestoredVault:
    """What a restore brought back."""

    identity: DeviceIdentity
    records: int
    items: int


def _parse(data: bytes) -> dict[str, Any]:
    if not data.startswith(MAGIC):
        raise BackupError("not a wifisync backup file")
    try:
        doc = msgpack.unpackb(data[len(MAGIC):], raw=False, max_bin_len=MAX_BACKUP_BYTES)
    except Exception as exc:
        raise BackupError("the backup file is damaged (not readable)") from exc
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise BackupError("the backup file is damaged or of an unknown version")
    for key, kind in (("vault", bytes), ("device", bytes), ("device_key", bytes),
                      ("records", list)):
        if not isinstance(doc.get(key), kind):
            raise BackupError(f"the backup file is damaged ({key})")
    return doc


def _identity(doc: dict[str, Any], vault_key: bytes) -> DeviceIdentity:
    try:
        key_pem = crypto.open_sealed(crypto.derive_key(vault_key, "backup-identity"),
                                     doc["device_key"], _aad(doc["vault"], doc["device"]))
        key = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_der_x509_certificate(doc["device"])
    except (IntegrityError, ValueError) as exc:
        raise BackupError("the backup's device key does not open (damaged file?)") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise BackupError("the backup's device key is not an Ed25519 key")
    identity = DeviceIdentity(private_key=key, certificate=cert)
    if identity.cert_der != doc["device"]:
        raise BackupError("the backup's device key and certificate do not match")
    return identity


def _load_records(doc: dict[str, Any]) -> MemoryStore:
    """Every record, structurally checked and signed by a member the backup names."""
    records: list[Record] = []
    for encoded in doc["records"]:
        if not isinstance(encoded, bytes):
            raise BackupError("the backup file is damaged (a record)")
        try:
            record = Record.decode(encoded)
        except IntegrityError as exc:
            raise BackupError(f"the backup file is damaged: {exc}") from exc
        if record.header.vault != doc["vault"]:
            raise BackupError("the backup mixes records of different vaults")
        records.append(record)
    staging = MemoryStore()
    with staging.transaction():
        staging.set_meta(META_VAULT_ID, doc["vault"])
        for r in records:
            staging.append(r)
    try:
        known = members(staging)
    except IntegrityError as exc:  # a MEMBER record's certificate or body is damaged
        raise BackupError(f"the backup file is damaged: {exc}") from exc
    for r in records:
        member = known.get(r.header.author)
        if member is None:
            raise BackupError("the backup holds a record by a device that is not a member")
        try:
            r.verify(member.public_key)
        except IntegrityError as exc:
            raise BackupError("a record in the backup has a bad signature") from exc
    return staging


def restore_backup(data: bytes, home: Home, password: str) -> RestoredVault:
    """Bring a vault back into an empty home: the master password must open it."""
    doc = _parse(data)
    if DeviceIdentity.exists(home.data_dir) or home.store_file.exists():
        raise AlreadyInitialisedError(
            f"{home.data_dir} already holds a device or vault; restore needs an empty home")
    staging = _load_records(doc)
    wrapped = read_wrapped_key(staging)
    vault_key = crypto.unwrap_vault_key(wrapped.wrapped, password, wrapped.kdf)
    identity = _identity(doc, vault_key)
    me = members(staging).get(identity.device_id)
    if me is None:
        raise BackupError("the backup's device is not a member of its vault")
    if me.revoked:
        raise RevokedDeviceError(
            f"this backup's device ({identity.short_id}, {me.name!r}) was revoked from the "
            "vault; it cannot sync again. Join the vault as a new device instead")
    Vault(staging, identity, vault_key).verify_all()
    with home.creating_store() as store:
        _copy(staging, store, doc["vault"])
        items = len(Vault(store, identity, vault_key).items())
        count = store.count_records()
        identity.save(home.data_dir)
    return RestoredVault(identity, count, items)


def _copy(source: MemoryStore, target: RecordStore, vault_id: bytes) -> None:
    records = [source.get_record(rid) for rid in source.record_ids()]
    with target.transaction():
        target.set_meta(META_VAULT_ID, vault_id)
        for r in sorted((r for r in records if r is not None),
                        key=lambda r: (r.header.author, r.header.seq)):
            target.append(r)

