"""The agent process (``python -m wifisync.agent``): holds the vault key until lock or timeout.

It reads ``{"key": HEX, "timeout": SECONDS}`` as one line on standard input from
``wifisync unlock`` (never argv or environment), keeps the key in a locked, never-dumped
page, makes itself non-dumpable, and answers the same user's requests on a 0600 socket.
For ``get`` and ``list`` it keeps a summary of every item (title, type, tags, username,
URL: no other field value) so that those commands need no decryption of the whole vault;
a field value is decrypted for the one item asked for, when asked.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sqlite3
import struct
import sys
import time
from pathlib import Path
from typing import Any

from wifisync.agent.memory import LockedSecret, harden_process, is_dumpable
from wifisync.agent.protocol import MAX_REQUEST, socket_path
from wifisync.errors import WifisyncError
from wifisync.home import Home

CHECK_INTERVAL_S = 1.0  # how often an idle agent checks its deadline and its socket file
CLIENT_TIMEOUT_S = 5.0
_UCRED = struct.Struct("3i")


def peer_uid(conn: socket.socket) -> int | None:
    """The connecting process's uid from the kernel (SO_PEERCRED), None where unsupported."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return int(_UCRED.unpack(raw)[1])


class Agent:
    """Serves one home's vault key and lookups until locked, timed out or its socket is gone."""

    def __init__(self, home: Home, secret: LockedSecret, timeout_s: float) -> None:
        from wifisync.model.identity import DeviceIdentity
        from wifisync.store.sqlite import SqliteStore
        from wifisync.vault.unlocked import Vault, vault_id_of

        self.home = home
        self.secret = secret
        self.deadline = time.time() + timeout_s if timeout_s > 0 else None
        self.store = SqliteStore(home.store_file)
        self.identity = DeviceIdentity.load(home.data_dir)
        self.vault_id = vault_id_of(self.store)
        # One vault object for the agent's life (its signature checker keeps the members'
        # keys); it holds the key only while a request runs (see _vault / _forget_derived).
        self.vault = Vault.with_key(self.store, self.identity, secret.reveal())
        self._stamp_db = sqlite3.connect(f"file:{home.store_file}?mode=ro", uri=True)
        self._stamp: tuple[int, int] | None = None  # (max record number, record count)
        self._by_id: dict[str, Any] = {}  # item ID hex -> lookup.Summary
        self._summaries: list[Any] = []  # the same, sorted as `list` shows them
        self._candidates: list[tuple[bytes, str]] = []  # (ID, title) for lookup.resolve
        self._listing: list[list[Any]] | None = None  # the unfiltered `list` reply
        self._running = True
        self._sock: socket.socket | None = None
        self._inode = 0

    # --- socket ---------------------------------------------------------------------------

    def bind(self) -> None:
        """Listen on the home's agent socket, mode 0600, replacing a stale one."""
        path = socket_path(self.home.runtime_dir)
        self.home.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(16)
        self._sock = sock
        self._inode = path.stat().st_ino

    def _socket_still_ours(self) -> bool:
        try:
            return socket_path(self.home.runtime_dir).stat().st_ino == self._inode
        except OSError:
            return False

    def serve(self) -> None:
        """Answer requests until lock, timeout, or the socket file disappears (logout)."""
        assert self._sock is not None
        try:
            while self._running:
                now = time.time()
                if self.deadline is not None and now >= self.deadline:
                    break
                if not self._socket_still_ours():
                    break
                wait = CHECK_INTERVAL_S if self.deadline is None else min(
                    CHECK_INTERVAL_S, self.deadline - now)
                self._sock.settimeout(max(wait, 0.01))
                try:
                    conn, _ = self._sock.accept()
                except TimeoutError:
                    continue
                with conn:
                    self._answer(conn)
        finally:
            self.close()

    def close(self) -> None:
        """Forget the key and remove the socket (if it is still ours)."""
        self.secret.wipe()
        self._forget_derived()
        if self._sock is not None:
            if self._socket_still_ours():
                with contextlib.suppress(OSError):
                    socket_path(self.home.runtime_dir).unlink()
            self._sock.close()
            self._sock = None

    def _answer(self, conn: socket.socket) -> None:
        uid = peer_uid(conn)
        if uid is not None and uid != os.getuid():
            return  # another user: not a word
        conn.settimeout(CLIENT_TIMEOUT_S)
        try:
            data = b""
            while not data.endswith(b"\n") and len(data) <= MAX_REQUEST:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            try:
                request = json.loads(data) if len(data) <= MAX_REQUEST else None
            except ValueError:
                request = None
            reply = self.handle(request) if isinstance(request, dict) else _error(
                "malformed request", 2)
            conn.sendall(json.dumps(reply).encode())
        except OSError:
            return

    # --- requests -------------------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request: status, key, lock, get or list."""
        op = request.get("op")
        try:
            if op == "status":
                return {"ok": True, "vault": self.vault_id.hex(), "until": self.deadline,
                        "pid": os.getpid(), "dumpable": is_dumpable()}
            if op == "key":
                return {"ok": True, "vault": self.vault_id.hex(),
                        "key": self.secret.reveal().hex()}
            if op == "lock":
                self._running = False
                return {"ok": True}
            if op == "resolve":
                return {"ok": True, "id": self._resolve(str(request.get("item", ""))).hex()}
            if op == "get":
                return {"ok": True, "value": self._get(str(request.get("item", "")),
                                                       str(request.get("field", "password")))}
            if op == "list":
                return {"ok": True, "items": self._list(request)}
            return _error(f"unknown request {op!r}", 2)
        except WifisyncError as exc:
            return {**_error(str(exc), exc.exit_code), "kind": type(exc).__name__}
        finally:
            self._forget_derived()

    def _vault(self) -> Any:
        self.vault.vault_key = self.secret.reveal()
        return self.vault

    def warm(self) -> None:
        """Build the summaries now, so the first ``get`` after ``unlock`` is as quick."""
        try:
            self._refresh(self._vault())
        finally:
            self._forget_derived()

    def _refresh(self, vault: Any) -> list[Any]:
        """Summaries of every live item, brought up to date with the store.

        Records are only ever appended (numbered upwards) except by a rare purge, so when
        the count grew exactly as the highest number did, only the items of the new records
        are read again; anything else rebuilds the whole index.
        """
        from wifisync.cli.listing import summarise
        from wifisync.errors import ItemNotFoundError

        top, count = self._stamp_db.execute(
            "SELECT coalesce(max(n), 0), count(*) FROM records").fetchone()
        if self._stamp == (top, count):
            return self._summaries
        old = self._stamp
        if old is not None and count - old[1] == top - old[0] >= 0:
            changed = [bytes(i) for (i,) in self._stamp_db.execute(
                "SELECT DISTINCT item FROM records WHERE n > ? AND kind = 1", (old[0],))]
            for item in changed:
                try:
                    self._by_id[item.hex()] = summarise(vault.get(item))
                except ItemNotFoundError:  # deleted
                    self._by_id.pop(item.hex(), None)
        else:
            from wifisync.store.sigmarks import mark_key
            from wifisync.vault.unlocked import AuthorCheck

            # Rebuilt: take the members' keys afresh too (a device paired or revoked since).
            vault.signatures = AuthorCheck(self.store, vault.verifier, mark_key(self.identity))
            self._by_id = {v.id_text: summarise(v) for v in vault.items()}
        self._summaries = sorted(self._by_id.values(), key=lambda s: (s.title.lower(), s.id))
        self._candidates = [(bytes.fromhex(s.id), s.title) for s in self._summaries]
        self._listing = None
        self._stamp = (top, count)
        return self._summaries

    def _resolve(self, ref: str) -> bytes:
        from wifisync.vault.lookup import resolve

        vault = self._vault()
        self._refresh(vault)
        return resolve_full_id(vault, ref) or resolve(ref, self._candidates)

    def _get(self, ref: str, field: str) -> str:
        from wifisync.vault.lookup import field_value

        view = self.vault.get(self._resolve(ref))
        return field_value(view.state.title, view.state.values, field)

    def _list(self, request: dict[str, Any]) -> list[list[Any]]:
        """Rows ``[id, title, type, tags, updated]`` of the items the filters keep."""
        from wifisync.vault.lookup import matches

        summaries = self._refresh(self._vault())
        query, tag, type_ = (_opt(request.get(k)) for k in ("query", "tag", "type"))
        if query is None and tag is None and type_ is None:
            if self._listing is None:
                self._listing = [s.row() for s in summaries]
            return self._listing
        return [s.row() for s in summaries if matches(s, query, tag, type_)]

    def _forget_derived(self) -> None:
        self.vault.vault_key = b""  # and the payload key derived from it


def resolve_full_id(vault: Any, ref: str) -> bytes | None:
    """A full item ID names that item even when deleted (as :meth:`Vault.resolve` does)."""
    ref_l = ref.strip().lower()
    if len(ref_l) == 32 and all(c in "0123456789abcdef" for c in ref_l):
        return bytes.fromhex(ref_l) if vault.store.heads(bytes.fromhex(ref_l)) else None
    return None


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _error(message: str, code: int) -> dict[str, Any]:
    return {"ok": False, "error": message, "code": code}


def main(argv: list[str] | None = None) -> int:
    """Start from ``wifisync unlock``: harden, take the key from stdin, serve."""
    harden_process()
    ap = argparse.ArgumentParser(prog="wifisync-agent")
    ap.add_argument("--config-dir", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--runtime-dir", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        handover = json.loads(sys.stdin.buffer.readline())
        secret = LockedSecret(bytes.fromhex(handover.pop("key")))
        timeout = float(handover["timeout"])
        agent = Agent(Home(args.config_dir, args.data_dir, args.runtime_dir), secret, timeout)
        agent.warm()
        agent.bind()
    except (WifisyncError, OSError, ValueError, KeyError) as exc:
        sys.stdout.write(f"error {exc}\n")
        return 1
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    agent.serve()
    return 0
