"""The inbox: received batches kept in files until stored, replayed whole at start."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from tests.sync.helpers import Device, household
from wifisync.daemon.inbox import MAGIC, Inbox, read_frames, replay
from wifisync.model.records import Kind, Record
from wifisync.sync.messages import Batch, Push, encode_message


@pytest.fixture
def pair() -> tuple[Device, Device, list[Record]]:
    """Devices A and B, paired, and six item records A wrote since (B holds none of them)."""
    a, b = household(2)
    for i in range(6):
        a.vault.add(f"item {i}", "login", {"password": f"pw{i}"})
    return a, b, [r for r in a.store.records_after(a.id, 0, 100) if r.header.kind == Kind.ITEM]


def batch(serial: int, *records: Record) -> bytes:
    return encode_message(Batch(serial, tuple(r.encoded for r in records)))


def kept(folder: Path, *frames: bytes, **limits: int) -> Inbox:
    """An inbox in ``folder`` holding ``frames``, closed as a kill leaves it."""
    inbox = Inbox(folder, **limits)
    for frame in frames:
        inbox.append(frame)
    inbox.close()
    return inbox


def held(device: Device, records: list[Record]) -> list[bool]:
    return [device.store.has_record(r.id) for r in records]


def test_replay_stores_the_batches_in_order_then_clears_the_inbox(
        pair: tuple[Device, Device, list[Record]], tmp_path: Path) -> None:
    a, b, records = pair
    kept(tmp_path, batch(0, *records[:2]), batch(1, *records[2:4]), batch(2, *records[4:]))
    done = replay(tmp_path, b.replica)
    assert (done.batches, done.records, done.applied, done.refused) == (3, 6, 6, 0)
    assert all(held(b, records))
    assert b.store.seen()[a.id] == records[-1].header.seq
    assert not list(tmp_path.glob("*.frames"))
    assert replay(tmp_path, b.replica).batches == 0


def test_a_replay_cut_short_by_a_kill_stores_nothing_twice_when_run_again(
        pair: tuple[Device, Device, list[Record]], tmp_path: Path) -> None:
    _a, b, records = pair
    folder, copy = tmp_path / "inbox", tmp_path / "copy"
    kept(folder, batch(0, *records[:3]), batch(1, *records[3:]))
    shutil.copytree(folder, copy)
    replay(folder, b.replica)  # stored, then killed before the inbox was cleared:
    shutil.rmtree(folder)
    shutil.copytree(copy, folder)
    state = b.state()
    again = replay(folder, b.replica)
    assert (again.records, again.applied, again.refused) == (6, 0, 0)
    assert b.state() == state


def test_a_torn_tail_is_dropped_with_one_line_and_what_precedes_it_is_stored(
        pair: tuple[Device, Device, list[Record]], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    _a, b, records = pair
    kept(tmp_path, batch(0, *records[:2]), batch(1, *records[2:4]), batch(2, *records[4:]))
    segment, = tmp_path.glob("*.frames")
    segment.write_bytes(segment.read_bytes()[:-5])  # the kill fell inside the last write
    with caplog.at_level(logging.WARNING):
        done = replay(tmp_path, b.replica)
    assert held(b, records) == [True] * 4 + [False] * 2  # a prefix, whole batches
    assert done.batches == 2
    assert [r.getMessage() for r in caplog.records] == [
        f"inbox: {segment.name} holds a torn or garbled frame; ignoring what follows"]
    assert not list(tmp_path.glob("*.frames"))


@pytest.mark.parametrize("damage", ["flipped byte", "not an inbox", "header cut"])
def test_a_garbled_inbox_stores_only_the_frames_before_the_damage(
        pair: tuple[Device, Device, list[Record]], tmp_path: Path, damage: str) -> None:
    _a, b, records = pair
    first, second = batch(0, *records[:3]), batch(1, *records[3:])
    kept(tmp_path, first, second)
    segment, = tmp_path.glob("*.frames")
    data = bytearray(segment.read_bytes())
    if damage == "flipped byte":
        data[-3] ^= 0x40  # inside the second frame: its CRC no longer matches
    elif damage == "not an inbox":
        data[:len(MAGIC)] = b"x" * len(MAGIC)
    else:
        data = data[:len(MAGIC) + 8 + len(first) + 3]
    segment.write_bytes(bytes(data))
    replay(tmp_path, b.replica)
    assert held(b, records) == [damage != "not an inbox"] * 3 + [False] * 3


def test_a_forged_record_in_the_inbox_is_refused_as_from_the_network(
        pair: tuple[Device, Device, list[Record]], tmp_path: Path) -> None:
    _a, b, records = pair
    good = records[0]
    forged = Record.create(records[1].header, records[1].body + b"!", records[1].signature)
    kept(tmp_path, batch(0, good), batch(1, forged))
    done = replay(tmp_path, b.replica)
    assert (done.applied, done.refused) == (1, 1)
    assert b.store.has_record(good.id) and not b.store.has_record(forged.id)


def test_a_frame_that_is_no_batch_ends_the_replay(
        pair: tuple[Device, Device, list[Record]], tmp_path: Path) -> None:
    _a, b, records = pair
    push = encode_message(Push(tuple(r.encoded for r in records[2:4])))
    kept(tmp_path, batch(0, *records[:2]), push, batch(1, *records[4:]))
    replay(tmp_path, b.replica)
    assert held(b, records) == [True] * 2 + [False] * 4


def test_past_its_cap_the_inbox_keeps_nothing_until_every_frame_is_stored(
        pair: tuple[Device, Device, list[Record]], tmp_path: Path) -> None:
    _a, _b, records = pair
    frames = [batch(i, r) for i, r in enumerate(records)]
    entry = 8 + len(frames[0])
    inbox = Inbox(tmp_path, max_bytes=len(MAGIC) + 2 * entry + 10)
    for frame in frames[:4]:
        inbox.append(frame)
    assert inbox.size <= inbox.max_bytes
    assert list(read_frames(tmp_path)) == frames[:2]  # the third and fourth are not kept
    inbox.release(3)  # the fourth is not stored yet: a kept fifth would follow a gap
    inbox.append(frames[4])
    assert list(read_frames(tmp_path)) == frames[:2]
    inbox.release(inbox.next)  # every frame is stored: the inbox empties and keeps again
    inbox.append(frames[5])
    assert list(read_frames(tmp_path)) == [frames[5]]
    inbox.close()


def test_a_segment_goes_once_every_frame_it_holds_is_stored(
        pair: tuple[Device, Device, list[Record]], tmp_path: Path) -> None:
    _a, _b, records = pair
    frames = [batch(i, r) for i, r in enumerate(records[:4])]
    inbox = Inbox(tmp_path, segment_bytes=1)  # one frame per segment
    numbers = [inbox.append(f) for f in frames]
    assert numbers == [0, 1, 2, 3]
    inbox.release(2)
    assert list(read_frames(tmp_path)) == frames[2:]
    assert len(list(tmp_path.glob("*.frames"))) == 2
    inbox.release(4)
    assert list(read_frames(tmp_path)) == []
    inbox.close()


def test_the_inbox_is_private_to_its_user(
        pair: tuple[Device, Device, list[Record]], tmp_path: Path) -> None:
    _a, _b, records = pair
    folder = tmp_path / "inbox"
    kept(folder, batch(0, records[0]))
    assert folder.stat().st_mode & 0o777 == 0o700
    assert [p.stat().st_mode & 0o777 for p in folder.glob("*.frames")] == [0o600]


def test_an_inbox_that_cannot_be_made_keeps_nothing_and_stops_nothing(
        pair: tuple[Device, Device, list[Record]], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    _a, b, records = pair
    folder = tmp_path / "inbox"
    folder.write_bytes(b"not a folder")
    with caplog.at_level(logging.WARNING):
        assert replay(folder, b.replica).batches == 0
        inbox = Inbox(folder)
        assert inbox.append(batch(0, records[0])) == 0
    assert inbox.size == 0
    assert len(caplog.records) == 1 and "received batches are not kept" in caplog.text
