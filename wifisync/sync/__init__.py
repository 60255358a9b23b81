"""The sans-IO replication core: wire messages, the accepting replica, the session machine."""

from __future__ import annotations

from wifisync.sync.messages import PROTOCOL_VERSION, Message, decode_message, encode_message
from wifisync.sync.replica import ApplyResult, Replica
from wifisync.sync.session import SessionOutput, SessionStats, SyncSession

__all__ = [
    "PROTOCOL_VERSION",
    "ApplyResult",
    "Message",
    "Replica",
    "SessionOutput",
    "SessionStats",
    "SyncSession",
    "decode_message",
    "encode_message",
]
