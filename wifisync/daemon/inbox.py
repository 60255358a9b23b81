"""The inbox: received stream batches kept in a file until the store holds them, so a kill
-9 of the daemon loses what was in flight on the network, not what it had received.

A receiving daemon stores the batches of an initial exchange in large groups (small
commits are expensive: ``sync/session.py``), and before this a kill lost everything
received and not yet committed, which the sender then sent again. Now each BATCH frame,
through TLS and the session's authentication and still unchecked, is appended here as it
arrives, on the event loop; the store thread's transactions never wait for it, nor it for
them. A write reaches the kernel's page cache, which a killed process does not lose, so
nothing is synced to disk (a power cut loses the inbox as it loses uncommitted WAL
pages: the peers still hold every record). Once every batch a segment holds is
committed, the segment goes; once every batch is, the inbox is empty.

When the daemon starts, before it offers its ``seen`` vector to any peer, :func:`replay`
feeds what the inbox holds through the normal path: each frame decoded as a BATCH, every
record's signature checked and the same accept rule applied, whole batches in arrival
order; then the inbox is cleared. Replaying twice stores nothing twice (the store knows
its records), so a kill during the replay costs nothing either. A torn or garbled inbox
(a power cut, anyone who can write the data folder) is read up to its first bad frame:
the rest is dropped with one log line, and the store is never touched by what was not
read whole. The inbox holds only what the store holds: encrypted, signed records.

Bounded: at most ``MAX_BYTES`` are kept. Past that, frames are not kept until every
frame received so far is committed (a kept frame after a missing one could store a
sender's records with a gap; the sync itself goes on regardless).
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wifisync.errors import IntegrityError, ProtocolError
from wifisync.model.records import Record
from wifisync.sync.messages import Batch, MessageType, decode_message
from wifisync.sync.replica import PreparedBatch, Replica

log = logging.getLogger("wifisync.daemon")

MAGIC = b"wifisync-inbox-1\n"  # the first bytes of every segment file
SEGMENT_BYTES = 1024 * 1024  # a segment past this size is closed and a new one started
MAX_BYTES = 32 * 1024 * 1024  # kept at most, over all segments
REPLAY_GROUP_BYTES = 2 * 1024 * 1024  # replayed batches stored per transaction at most
_HEADER = struct.Struct(">II")  # each frame: its length and CRC-32, then its bytes
_BATCH = int(MessageType.BATCH)


def is_batch(frame: bytes) -> bool:
    """Whether a frame is a BATCH: a msgpack fixarray whose first element is 2."""
    return len(frame) > 1 and frame[0] & 0xF0 == 0x90 and frame[1] == _BATCH


@dataclass(slots=True)
class _Segment:
    path: Path
    last: int  # the number of the last frame written to it
    size: int


class Inbox:
    """The received batches not yet committed, in segment files of one private folder.

    Frames are numbered as they arrive (kept or not); :meth:`release` names the oldest
    one still uncommitted. Used on the event loop only.
    """

    def __init__(self, folder: Path, max_bytes: int = MAX_BYTES,
                 segment_bytes: int = SEGMENT_BYTES) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._segments: list[_Segment] = []
        self._fd: int | None = None  # the last segment's, open for appending
        self._next = 0  # the number the next frame gets
        self._bytes = 0
        self._full = False  # frames are not kept until every one so far is committed
        self._serial = 0  # segment file names, in order
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            folder.chmod(0o700)
            self._usable = True
        except OSError as exc:  # the sync works without it: frames are just not kept
            log.warning("inbox: cannot use %s (%s); received batches are not kept",
                        folder, exc.strerror or exc)
            self._usable = False

    @property
    def next(self) -> int:
        """The number the next frame gets (every frame below it arrived)."""
        return self._next

    @property
    def size(self) -> int:
        """Bytes the segments hold."""
        return self._bytes

    @property
    def keeping(self) -> bool:
        """Whether frames are kept now (the last one appended was, unless this is False)."""
        return self._usable and not self._full

    def append(self, frame: bytes) -> int:
        """Keep one received frame (unless the inbox is full); returns its number."""
        number = self._next
        self._next += 1
        if self._full or not self._usable:
            return number
        header = _HEADER.pack(len(frame), zlib.crc32(frame))
        size = len(header) + len(frame)
        opening = self._fd is None or self._segments[-1].size >= self.segment_bytes
        if self._bytes + size + opening * len(MAGIC) > self.max_bytes:
            self._stop_keeping("it holds %d bytes", self._bytes)
            return number
        try:
            if opening:
                self._open_segment()
            assert self._fd is not None
            written = os.writev(self._fd, (header, frame))  # one call, no copy
        except OSError as exc:
            self._stop_keeping("a write failed: %s", exc)
            return number
        segment = self._segments[-1]
        if written != size:  # a short write: take it back, keep nothing more
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, segment.size)
            self._stop_keeping("a write was cut short (%d of %d bytes)", written, size)
            return number
        segment.size += written
        segment.last = number
        self._bytes += written
        return number

    def release(self, oldest_unstored: int) -> None:
        """Every frame below ``oldest_unstored`` is committed: drop what only holds those."""
        if oldest_unstored >= self._next:
            self._clear_kept()
            self._full = False
            return
        while len(self._segments) > 1 and self._segments[0].last < oldest_unstored:
            segment = self._segments.pop(0)
            self._bytes -= segment.size
            with contextlib.suppress(OSError):
                segment.path.unlink()

    def close(self) -> None:
        """Close the open segment (what it holds stays for the next start)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _clear_kept(self) -> None:
        """Drop every segment (the next frame starts a new one)."""
        self.close()
        for segment in self._segments:
            with contextlib.suppress(OSError):
                segment.path.unlink()
        self._segments = []
        self._bytes = 0

    def _open_segment(self) -> None:
        self.close()
        self._serial += 1
        path = self.folder / f"{self._serial:012d}.frames"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
                           | os.O_CLOEXEC, 0o600)
        segment = _Segment(path, self._next - 1, 0)
        self._segments.append(segment)  # before the write: if it fails, the file still goes
        segment.size = os.write(self._fd, MAGIC)
        self._bytes += segment.size

    def _stop_keeping(self, why: str, *args: object) -> None:
        """Keep no frame until every one so far is committed (no gap in what is kept)."""
        self._full = True
        log.warning("inbox: not keeping received batches for now: " + why, *args)


def _segment_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.frames") if p.is_file())


def read_frames(folder: Path) -> Iterator[bytes]:
    """The frames the inbox's segments hold, in order, up to the first bad one."""
    for path in _segment_files(folder):
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("inbox: cannot read %s (%s); ignoring it and what follows",
                        path.name, exc.strerror)
            return
        if not data.startswith(MAGIC):
            log.warning("inbox: %s is not an inbox segment; ignoring it and what follows",
                        path.name)
            return
        at = len(MAGIC)
        while at < len(data):
            if at + _HEADER.size > len(data):
                log.warning("inbox: %s ends in a torn frame; ignoring what follows", path.name)
                return
            length, crc = _HEADER.unpack_from(data, at)
            frame = data[at + _HEADER.size:at + _HEADER.size + length]
            if len(frame) != length or zlib.crc32(frame) != crc:
                log.warning("inbox: %s holds a torn or garbled frame; ignoring what follows",
                            path.name)
                return
            yield frame
            at += _HEADER.size + length


@dataclass(slots=True)
class Replayed:
    """What a replay did (for the log line and tests)."""

    batches: int = 0
    records: int = 0
    applied: int = 0
    refused: int = 0


def replay(folder: Path, replica: Replica) -> Replayed:
    """Store what the inbox holds by the normal path, then clear it (see the module)."""
    done = Replayed()
    group: list[PreparedBatch] = []
    size = 0
    try:
        for frame in read_frames(folder):
            records = _batch_records(frame)
            if records is None:
                break
            group.append(replica.prepare(records))
            size += len(frame)
            done.batches += 1
            done.records += len(records)
            if size >= REPLAY_GROUP_BYTES:
                _store(replica, group, done)
                group, size = [], 0
        _store(replica, group, done)
    except Exception as exc:  # the store refused the transaction: the peers still hold it all
        log.warning("inbox: replay stopped (%s); the rest is dropped", exc)
    if done.batches:
        log.info("inbox: replayed %d batch(es) received before the last stop: %d of %d "
                 "records were new, %d refused", done.batches, done.applied, done.records,
                 done.refused)
    for path in _segment_files(folder):
        with contextlib.suppress(OSError):
            path.unlink()
    return done


def _batch_records(frame: bytes) -> list[Record] | None:
    """A frame's records, decoded as from the network; None (logged) when it is no BATCH."""
    try:
        msg = decode_message(frame)
        if not isinstance(msg, Batch):
            raise ProtocolError(f"a {type(msg).__name__.upper()} frame")
        return [Record.decode(e) for e in msg.records]
    except (ProtocolError, IntegrityError) as exc:
        log.warning("inbox: a frame is no well-formed batch (%s); ignoring it and what "
                    "follows", exc)
        return None


def _store(replica: Replica, group: list[PreparedBatch], done: Replayed) -> None:
    if group:
        for result in replica.commit_group(group):
            done.applied += len(result.applied)
            done.refused += result.refused
