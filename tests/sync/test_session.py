"""Two peers over an in-memory wire: every path of the session protocol."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from tests.sync.helpers import Device, Wire, create_device, household, identity, join_device, sync
from wifisync.errors import ProtocolError
from wifisync.model.records import Kind, Membership
from wifisync.sync import SyncSession, encode_message, outbound, session
from wifisync.sync.messages import PROTOCOL_VERSION, Batch, Hello, Push, decode_message
from wifisync.vault.unlocked import META_VAULT_ID


def add_items(device: Device, n: int, prefix: str = "item") -> list[bytes]:
    """``n`` new items written on ``device``."""
    vault = device.vault
    return [vault.add(f"{prefix}{i}", fields={"password": f"secret-{i}"}) for i in range(n)]


def test_empty_peer_receives_everything_once() -> None:
    a, b = household(2)
    add_items(a, 30)
    lacking = a.record_ids() - b.record_ids()
    wire = sync(a, b)
    assert a.state() == b.state()
    assert {r.id for r in wire.applied(1)} == lacking
    assert wire.sessions[0].stats.records_sent == len(lacking)
    assert wire.sessions[1].stats.records_sent == 0


def test_peer_a_month_behind_gets_only_the_month() -> None:
    a, b = household(2)
    items = add_items(a, 40)
    sync(a, b)
    vault = a.vault
    for item in items[:15]:
        vault.edit(item, fields={"password": "rotated"})
    add_items(a, 5, prefix="new")
    wire = sync(b, a)
    assert a.state() == b.state()
    assert wire.sessions[1].stats.records_sent == 20
    assert wire.sessions[0].stats.records_sent == 0
    assert len(wire.applied(0)) == 20


def test_up_to_date_peers_exchange_only_hellos() -> None:
    a, b = household(2)
    add_items(a, 20)
    sync(a, b)
    wire = sync(a, b)
    assert wire.delivered == 2
    assert all(s.stats.frames_sent == 1 for s in wire.sessions)
    assert all(s.stats.bytes_sent < 200 for s in wire.sessions)


def test_both_sides_with_news_exchange_exactly_their_news() -> None:
    a, b = household(2)
    shared = add_items(a, 10)
    sync(a, b)
    a.vault.edit(shared[0], fields={"password": "from-a"})
    b.vault.edit(shared[0], fields={"user": "from-b"})
    add_items(b, 3, prefix="b")
    wire = sync(a, b)
    assert a.state() == b.state()
    assert wire.sessions[0].stats.records_sent == 1
    assert wire.sessions[1].stats.records_sent == 4
    view = a.vault.get(shared[0])
    assert view.conflicts == 1
    assert view.state.values["password"] == "from-a"
    assert view.state.values["user"] == "from-b"


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> int:
    """Ten records per batch, so a few dozen records make a multi-batch stream."""
    monkeypatch.setattr(outbound, "MAX_BATCH_RECORDS", 10)
    return 10


def test_cut_mid_stream_keeps_whole_batches_and_resumes(small_batches: int) -> None:
    a, b = household(2)
    add_items(a, small_batches * (session.WINDOW + 2))
    before = b.store.count_records()
    wire = Wire(a, b)
    while not any(out.applied for out in wire.outputs[1]):
        wire.deliver_one()
    # The connection drops here: frames in flight are lost.
    stored = b.store.count_records() - before
    assert 0 < stored < a.store.count_records() - before
    assert stored % small_batches == 0  # whole batches only
    resumed = sync(a, b)
    assert a.state() == b.state()
    lacking_after_cut = a.store.count_records() - before - stored
    assert resumed.sessions[0].stats.records_sent == lacking_after_cut


def test_malformed_record_rejects_the_whole_batch(small_batches: int) -> None:
    a, b = household(2)
    add_items(a, 25)
    before = b.state()
    wire = Wire(a, b)
    wire.run_until(2)  # both HELLOs
    frame = next(f for f in wire.frames() if isinstance(decode_message(f.data), Batch))
    batch = decode_message(frame.data)
    assert isinstance(batch, Batch)
    broken = list(batch.records)
    broken[5] = broken[5][:-1] + bytes([broken[5][-1] ^ 1]) + b"\x00"  # trailing junk
    with pytest.raises(ProtocolError, match="malformed record"):
        wire.sessions[1].receive(encode_message(Batch(batch.serial, tuple(broken))), 0.0)
    assert b.state() == before


def test_duplicated_stream_frame_is_a_protocol_error(small_batches: int) -> None:
    a, b = household(2)
    add_items(a, 25)
    wire = Wire(a, b)
    wire.run_until(2)
    frame = wire.queue.popleft()
    wire.deliver_one(frame)
    count = b.store.count_records()
    with pytest.raises(ProtocolError, match="expected"):
        wire.deliver_one(frame)
    assert b.store.count_records() == count


def test_fingerprint_mismatch_recovers_by_exchanging_record_ids(
        caplog: pytest.LogCaptureFixture) -> None:
    a, b = household(2)
    add_items(a, 5)
    sync(a, b)
    add_items(a, 3, prefix="late")
    lost = a.record_ids() - b.record_ids()
    # A bug on b: its seen vector claims a's late records although it never got them.
    with b.store.transaction():
        b.store._set_seen(a.id, a.store.max_seq(a.id))
    wire = sync(a, b)
    assert b.record_ids() == a.record_ids()
    assert b.store.fingerprint() == a.store.fingerprint()
    assert {r.id for r in wire.applied(1)} == lost
    assert all(s.stats.id_exchanges == 1 for s in wire.sessions)
    assert wire.sessions[0].stats.records_sent == len(lost)
    assert not any(s.stats.fingerprint_mismatch for s in wire.sessions)
    assert "fingerprints differ" in caplog.text


def test_record_held_beyond_a_gap_is_completed_by_seq() -> None:
    a, b = household(2)
    sync(a, b)
    add_items(a, 3)
    newest = a.store.records_after(a.id, a.store.max_seq(a.id) - 1, 1)
    b.replica.apply(newest)  # b holds a's last record but not the two before it
    assert b.store.seen().get(a.id, 0) < a.store.max_seq(a.id)
    wire = sync(a, b)
    assert a.state() == b.state()
    assert all(s.stats.id_exchanges == 0 for s in wire.sessions)


def test_relay_a_to_b_to_c_without_a_and_c_meeting() -> None:
    a, b, c = household(3)
    sync(a, b)
    add_items(a, 7)
    sync(a, b)
    wire = sync(b, c)
    assert a.record_ids() <= c.record_ids()
    assert any(r.header.author == a.id and r.header.kind == Kind.ITEM for r in wire.applied(1))
    sync(c, a)  # settles c's view of memberships on a; nothing of a's is missing on c
    assert a.state() == b.state() == c.state()


def test_live_push_is_relayed_to_a_third_device() -> None:
    a, b, c = household(3)
    sync(a, b)
    sync(b, c)
    sync(a, c)
    ab, bc = Wire(a, b), Wire(b, c)
    ab.run()
    bc.run()
    assert ab.in_sync and bc.in_sync
    item = a.vault.add("fresh", fields={"password": "pushed"})
    record = a.store.heads(item)[0]
    ab.push(0, [record])
    out = ab.deliver_one()
    assert [r.id for r in out.applied] == [record.id]
    assert not ab.queue  # a push has no reply
    bc.push(0, out.applied)
    bc.run()
    assert c.store.has_record(record.id)


def test_protocol_version_mismatch_is_clear() -> None:
    a, b = household(2)
    session = SyncSession(b.replica, a.id, now=0.0)
    session.start(0.0)
    frame = msgpack.packb([1, PROTOCOL_VERSION + 1, a.store.get_meta(META_VAULT_ID), [],
                           bytes(32), "future field"], use_bin_type=True)
    with pytest.raises(ProtocolError, match=r"protocol 2.*speaks 1"):
        session.receive(frame, 0.0)


def test_another_vault_is_refused() -> None:
    (a,) = household(1)
    stranger = create_device("other", identity(7))
    wire = Wire(a, stranger)
    with pytest.raises(ProtocolError, match="vault"):
        wire.run()


def test_messages_out_of_place_are_protocol_errors() -> None:
    a, b = household(2)
    session = SyncSession(b.replica, a.id, now=0.0)
    session.start(0.0)
    with pytest.raises(ProtocolError, match="before HELLO"):
        session.receive(encode_message(Push((b"x",))), 0.0)
    hello = Hello(PROTOCOL_VERSION, a.store.get_meta(META_VAULT_ID) or b"", (), bytes(32))
    session.receive(encode_message(hello), 0.0)
    with pytest.raises(ProtocolError, match="second HELLO"):
        session.receive(encode_message(hello), 0.0)


def test_new_member_records_arrive_after_their_membership(small_batches: int) -> None:
    # The newcomer's ID sorts before its introducer's: by (origin, seq) alone its items
    # would travel in batches ahead of the membership record a wrote for it.
    newcomer, other, introducer = sorted((identity(k) for k in range(3, 6)),
                                         key=lambda i: i.device_id)
    a = create_device("introducer", introducer)
    b = join_device(a, "b", other)
    sync(a, b)
    d = join_device(a, "newcomer", newcomer)
    add_items(d, 3 * small_batches, prefix="d")
    sync(d, a)
    wire = sync(a, b)  # b has never heard of d
    assert wire.refused(1) == 0
    assert d.record_ids() <= b.record_ids()
    kinds = [r.header.kind for r in wire.applied(1)]
    assert kinds.index(Kind.ITEM) > kinds.index(Kind.MEMBER)


def test_member_introduced_by_a_later_member_is_ordered_after_its_introducer() -> None:
    a, b = household(2)
    c = join_device(b, "via-b", identity(4))  # b introduces c; a knows neither yet
    add_items(c, 2, prefix="c")
    sync(c, b)
    # b's own membership is authored by a; c's by b: order by introduction, not by origin.
    order = outbound.member_records_missing(b.store, {})
    subjects = [Membership.decode(r.body).device_id for r in order]
    assert subjects.index(b.id) < subjects.index(c.id)
    wire = sync(b, a)
    assert wire.refused(1) == 0
    assert c.record_ids() <= a.record_ids()


def test_stall_timer_fires_only_during_the_initial_exchange() -> None:
    a, b = household(2)
    add_items(a, 3)
    wire = Wire(a, b)
    deadline = wire.sessions[0].next_timer()
    assert deadline is not None
    assert wire.sessions[0].handle_timer(deadline - 1) == []
    with pytest.raises(ProtocolError, match="stalled"):
        wire.sessions[0].handle_timer(deadline)
    wire.run()
    assert wire.sessions[0].next_timer() is None


def test_an_initial_sync_commits_its_first_batches_at_once_and_groups_grow(
        small_batches: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "FIRST_BATCH_RECORDS", small_batches)  # the ramp at test scale
    a, b = household(2)
    add_items(a, small_batches * 40)
    before = b.store.count_records()
    wire = Wire(a, b)
    wire.run()
    assert wire.in_sync and b.store.count_records() - before == small_batches * 40
    groups = [len(out.applied) for out in wire.outputs[1] if out.applied]
    assert groups[0] == small_batches, groups  # durable once the second batch arrived
    assert max(groups) >= session.COMMIT_GROUP * small_batches, groups  # grew with the store


def test_the_sender_window_grows_with_the_receivers_commits(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """What the sender framed but the receiver has not stored is what a crash makes it resend:
    a few hundred records at first, then a share of what the session already stored."""
    small_batches = 50  # enough stream items fit the window to show it growing
    monkeypatch.setattr(outbound, "MAX_BATCH_RECORDS", small_batches)
    start = session.WINDOW_START_RECORDS
    a, b = household(2)
    add_items(a, 8 * start)
    before = b.store.count_records()
    wire = Wire(a, b)
    worst = 0
    while wire.queue:
        wire.deliver_one()
        stored = b.store.count_records() - before
        framed = wire.sessions[0].stats.records_sent
        worst = max(worst, framed - stored)
        window = max(start + stored // 2, 2 * small_batches)  # two batches at the least
        assert framed - stored <= window + small_batches, (framed, stored)
    assert wire.in_sync and b.store.count_records() - before == 8 * start
    assert worst > start + small_batches  # the window did grow


def test_before_any_acknowledgement_the_sender_frames_about_a_starting_window() -> None:
    """Doubling batches do not run ahead of what the receiver confirmed: a kill of the
    receiver as the session starts finds a few dozen records in flight, not thousands."""
    a, b = household(2)
    add_items(a, 600)
    sender, receiver = SyncSession(a.replica, b.id, now=0.0), SyncSession(b.replica, a.id, now=0.0)
    sender.start(0.0)
    hello, = receiver.start(0.0)
    out = sender.receive(hello, 0.0)
    framed = sum(len(m.records) for f in out.send if isinstance(m := decode_message(f), Batch))
    assert 0 < framed <= session.WINDOW_START_RECORDS + session.FIRST_BATCH_RECORDS


def test_the_receiver_checks_a_newer_batch_while_it_stores_the_older(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Checks and the store overlap: batches larger than the receiver's commit group still
    travel two at a time, and each commit but the last leaves the newest batch (its
    signature checks under way) for the next one."""
    monkeypatch.setattr(outbound, "MAX_BATCH_RECORDS", 50)  # > the first group of 32
    a, b = household(2)
    add_items(a, 600)
    wire = Wire(a, b)
    receiver = wire.sessions[1]
    replica = receiver.replica
    prepared: list[int] = []
    left_after_commit: list[int] = []
    prepare, commit_group = replica.prepare, replica.commit_group

    def counting_prepare(records: Any) -> Any:
        prepared.append(len(records))
        return prepare(records)

    def counting_commit(group: Any) -> Any:
        results = commit_group(group)
        left_after_commit.append(len(prepared) - sum(len(g) for g in committed) - len(group))
        committed.append(group)
        return results

    committed: list[Any] = []
    monkeypatch.setattr(replica, "prepare", counting_prepare)
    monkeypatch.setattr(replica, "commit_group", counting_commit)
    wire.run()
    assert wire.in_sync and len(prepared) > 8
    assert all(n >= 1 for n in left_after_commit[:-1]), left_after_commit
    assert left_after_commit[-1] == 0  # DONE stores the rest


def test_a_rounds_first_batches_are_small_and_double() -> None:
    """The start of a stream is durable after small commits: 32 records, then 64, ..."""
    records = [b"r" * 100 for _ in range(3000)]
    sizes = [len(b) for b in outbound.batches(records, first=session.FIRST_BATCH_RECORDS)]
    assert sizes == [32, 64, 128, 256, 512, 1024, 984]
    assert [len(b) for b in outbound.batches(records)] == [1024, 1024, 952]
