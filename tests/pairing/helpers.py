"""A vault with a member and a would-be joiner, built with the library (no network)."""

from __future__ import annotations

from dataclasses import dataclass

from wifisync.model import crypto
from wifisync.model.identity import DeviceIdentity
from wifisync.store.memory import MemoryStore
from wifisync.vault.unlocked import Vault

PASSWORD = "pairing test password"
FAST_KDF = crypto.KdfParams.fresh(opslimit=1, memlimit=8192)


@dataclass
class Household:
    """One member device holding a vault, and a new device that wants to join it."""

    member: DeviceIdentity
    store: MemoryStore
    vault: Vault
    joiner: DeviceIdentity

    @classmethod
    def make(cls) -> Household:
        member = DeviceIdentity.generate()
        store = MemoryStore()
        vault = Vault.create(store, member, "desktop", PASSWORD, FAST_KDF)
        return cls(member, store, vault, DeviceIdentity.generate())
