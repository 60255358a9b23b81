"""Files on items: attached as sealed CHUNK records, read back whole and verified, or not at all.

Nothing here holds a whole attachment in memory: a file is read twice, a chunk at a time
(once to name it by its content, once to seal and store it), and read back twice (once to
check every chunk and the whole, once to write it out), so memory stays at a few chunks
whatever the size. An item version refers to an attachment by name
(``attachment:NAME``), so merges, history and deletes treat it like a field; the chunks
themselves are written once per content and shared by every item that holds that file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from wifisync.errors import IntegrityError, UsageError, WifisyncError
from wifisync.model import crypto
from wifisync.model.chunks import chunk_count, chunk_item, id_hasher, open_chunk, seal_chunk
from wifisync.model.items import AttachmentRef, ItemState
from wifisync.model.records import CHUNK_BYTES, Kind, Record, RecordHeader
from wifisync.vault.unlocked import Vault

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
WRITE_GROUP_BYTES = 4 * 1024 * 1024  # chunks stored per transaction before the daemon is told
MAX_NAME_CHARS = 255


class AttachmentError(WifisyncError):
    """An attachment cannot be read back whole: a chunk is missing or fails its check."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attachment of an item as listed: its name, reference and when it was attached."""

    name: str
    ref: AttachmentRef
    added: int  # hybrid-logical-clock time of the version that attached it


def check_name(name: str) -> str:
    """An attachment name: a plain file name, so export can write it beside the others."""
    if (not name or len(name) > MAX_NAME_CHARS or not name.isprintable() or "/" in name
            or "\\" in name or name in (".", "..")):
        raise UsageError(f"bad attachment name {name!r}: expected a plain file name of "
                         f"1-{MAX_NAME_CHARS} printable characters")
    return name


# --- sources: a file read twice, or a stream kept sealed on disk in between ----------------


def _pieces(stream: IO[bytes]) -> Iterator[bytes]:
    """A stream as chunk-sized pieces (the last shorter, none for an empty stream)."""
    while True:
        piece = stream.read(CHUNK_BYTES)
        if not piece:
            return
        while len(piece) < CHUNK_BYTES:  # a pipe may return less than asked
            more = stream.read(CHUNK_BYTES - len(piece))
            if not more:
                break
            piece += more
        yield piece


class Source:
    """Where an attachment's bytes come from; read once to name it, once to store it."""

    def __init__(self, stream: IO[bytes], path: Path | None) -> None:
        self._stream = stream
        self._path = path
        self._spool: IO[bytes] | None = None
        self._spool_key = b""

    @classmethod
    def of_path(cls, path: Path) -> Source:
        """A file on disk, opened now (so a missing one fails before the vault is unlocked)."""
        return cls(path.open("rb"), path)

    @classmethod
    def of_stream(cls, stream: IO[bytes]) -> Source:
        """A stream that can be read once (standard input, a member of an archive)."""
        return cls(stream, None)

    def first_pass(self) -> Iterator[bytes]:
        """The pieces; a one-time stream is kept meanwhile in a temporary file, sealed
        under a key that exists only in this process, so no plaintext reaches the disk."""
        if self._path is None:
            self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
            self._spool_key = crypto.random_bytes(crypto.KEY_SIZE)
        for i, piece in enumerate(_pieces(self._stream)):
            if self._spool is not None:
                sealed = crypto.seal(self._spool_key, piece, i.to_bytes(8, "big"))
                self._spool.write(len(sealed).to_bytes(4, "big") + sealed)
            yield piece

    def second_pass(self) -> Iterator[bytes]:
        """The same pieces again."""
        if self._spool is None:
            assert self._path is not None
            self._stream.close()
            self._stream = self._path.open("rb")
            yield from _pieces(self._stream)
            return
        spool = self._spool
        spool.seek(0)
        i = 0
        while head := spool.read(4):
            yield crypto.open_sealed(self._spool_key, spool.read(int.from_bytes(head, "big")),
                                     i.to_bytes(8, "big"))
            i += 1

    def close(self) -> None:
        """Close the file and drop the spool."""
        self._stream.close()
        if self._spool is not None:
            self._spool.close()


# --- writing -------------------------------------------------------------------------------


def _scan(vault: Vault, source: Source, max_bytes: int, label: str
          ) -> tuple[AttachmentRef, list[bytes]]:
    """The attachment's reference and each piece's digest (to check the second read)."""
    named = id_hasher(vault.vault_key)
    whole = hashlib.sha256()
    digests: list[bytes] = []
    size = 0
    for piece in source.first_pass():
        size += len(piece)
        if size > max_bytes:
            raise UsageError(f"{label} is larger than the attachment limit of "
                             f"{_mib(max_bytes)} ([vault] attachment_max_mib in the config)")
        named.update(piece)
        whole.update(piece)
        digests.append(hashlib.sha256(piece).digest())
    return AttachmentRef(named.digest(), size, whole.digest()), digests


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB"


def _fixed(body: bytes) -> Callable[[RecordHeader, list[Record]], bytes]:
    return lambda _header, _held: body


def store_chunks(vault: Vault, source: Source, max_bytes: int, label: str,
                 progress: Callable[[], object] | None = None) -> AttachmentRef:
    """Seal and store an attachment's chunks (those not held yet); returns its reference.

    Chunks are committed a few MiB at a time, ``progress`` called after each group (the
    CLI tells the daemon, which starts sending while the rest is sealed). A cut run leaves
    only unreferenced chunks, which the next attach of the same file reuses.
    """
    ref, digests = _scan(vault, source, max_bytes, label)
    count = len(digests)
    store = vault.store
    pieces = source.second_pass()
    index = 0
    while index < count:
        with store.transaction():
            group_bytes = 0
            while index < count and group_bytes < WRITE_GROUP_BYTES:
                piece = next(pieces, b"")
                if hashlib.sha256(piece).digest() != digests[index]:
                    raise WifisyncError(f"{label} changed while it was being attached; "
                                        "nothing was attached")
                item = chunk_item(ref.id, index)
                if not store.heads(item):
                    body = seal_chunk(vault.vault_key, ref.id, index, count, piece)
                    vault.author.write(item, Kind.CHUNK, _fixed(body))
                    group_bytes += len(body)
                index += 1
        if progress is not None and group_bytes:
            progress()
    return ref


def attach(vault: Vault, item: bytes, name: str, source: Source, max_bytes: int,
           progress: Callable[[], object] | None = None) -> AttachmentRef:
    """Attach a file to an item under ``name`` (replacing one of that name)."""
    check_name(name)
    vault.get(item)  # the item exists and reads: fail before storing anything
    ref = store_chunks(vault, source, max_bytes, f"attachment {name!r}", progress)
    vault.edit_attachments(item, {name: ref})
    return ref


def detach(vault: Vault, item: bytes, name: str) -> None:
    """Remove an attachment from an item (its chunks stay, as any old version's fields do)."""
    if name not in vault.get(item).state.attachments:
        raise UsageError(f"item has no attachment {name!r}")
    vault.edit_attachments(item, {name: None})


def of_state(state: ItemState) -> list[Attachment]:
    """The attachments of an item state, sorted by name."""
    return [Attachment(name, ref, added) for name, (ref, added) in state.attachments.items()]


def attachments(vault: Vault, item: bytes) -> list[Attachment]:
    """An item's attachments, sorted by name."""
    return of_state(vault.get(item).state)


def find(vault: Vault, item: bytes, name: str) -> Attachment:
    """One attachment of an item by name."""
    for a in attachments(vault, item):
        if a.name == name:
            return a
    raise UsageError(f"item has no attachment {name!r}")


# --- reading -------------------------------------------------------------------------------


class _Reader:
    """Reads an attachment's chunks in order, each checked: signature, seal and position."""

    def __init__(self, vault: Vault, attachment: Attachment) -> None:
        self.vault = vault
        self.attachment = attachment
        self.count = chunk_count(attachment.ref.size)

    def _fail(self, what: str) -> AttachmentError:
        return AttachmentError(f"attachment {self.attachment.name!r} cannot be read: {what}; "
                               "nothing was written")

    def _open(self, index: int, held: list[Record]) -> bytes:
        ref = self.attachment.ref
        for record in held:  # two devices may have stored the same chunk; any good one will do
            try:
                self.vault.signatures.check(record)
                piece = open_chunk(self.vault.vault_key, ref.id, index, self.count, record.body)
            except IntegrityError:
                continue
            expected = min(CHUNK_BYTES, ref.size - index * CHUNK_BYTES)
            if len(piece) == expected:
                return piece
        raise self._fail(f"chunk {index + 1} of {self.count} fails its integrity check")

    def pieces(self) -> Iterator[bytes]:
        """Every chunk's plaintext in order; a missing or bad one raises AttachmentError."""
        ref = self.attachment.ref
        for index in range(self.count):
            try:
                held = self.vault.store.heads(chunk_item(ref.id, index))
            except IntegrityError:  # the stored bytes no longer hash to the record's ID
                raise self._fail(f"chunk {index + 1} of {self.count} fails its integrity "
                                 "check") from None
            if not held:
                raise self._fail(f"chunk {index + 1} of {self.count} is missing "
                                 "(not synced here yet?)")
            yield self._open(index, held)

    def checked(self) -> Iterator[bytes]:
        """The pieces, then a check of the whole: AttachmentError unless it is exactly right."""
        ref = self.attachment.ref
        named = id_hasher(self.vault.vault_key)
        whole = hashlib.sha256()
        for piece in self.pieces():
            named.update(piece)
            whole.update(piece)
            yield piece
        if named.digest() != ref.id or whole.digest() != ref.sha256:
            raise self._fail("its content does not match its reference")


def verify(vault: Vault, attachment: Attachment) -> None:
    """Read the whole attachment and check it, keeping nothing."""
    for _piece in _Reader(vault, attachment).checked():
        pass


def write_to(vault: Vault, attachment: Attachment, out: IO[bytes]) -> None:
    """Write the attachment to a stream only once all of it was checked (two reads)."""
    verify(vault, attachment)
    for piece in _Reader(vault, attachment).checked():
        out.write(piece)


def save_as(vault: Vault, attachment: Attachment, path: Path, overwrite: bool = False) -> None:
    """Write the attachment to ``path`` through a temporary file renamed into place once checked.

    Without ``overwrite`` an existing ``path`` is refused (and left as it was).
    """
    if not overwrite and (path.exists() or path.is_symlink()):
        raise UsageError(f"{path} exists; give --force to overwrite it")
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for piece in _Reader(vault, attachment).checked():
                out.write(piece)
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if the file appeared meanwhile: never overwritten
            tmp.unlink()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

