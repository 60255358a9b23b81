"""The daemon's verifier: helper processes for large batches; forgeries caught; fails closed."""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from tests.sync.helpers import household
from tests.sync.test_session import add_items
from wifisync.daemon.sigcheck import check_all
from wifisync.daemon.sighelpers import (
    BEHIND,
    BEHIND_CHECKS,
    MAX_STARTS_PER_HELPER,
    SignatureHelpers,
)
from wifisync.daemon.verifier import (
    PARALLEL_VERIFY_MIN,
    PROCESS_VERIFY_MIN,
    HelperVerifier,
    collect,
)
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import Kind, Record, RecordHeader, sign_records
from wifisync.sync import Replica
from wifisync.wallclock import wall_ms


def forged(good: Record) -> Record:
    """``good`` with one body byte changed and its signature kept."""
    return Record.create(good.header, good.body[:-1] + bytes([good.body[-1] ^ 1]),
                         good.signature, good.proof)


@pytest.fixture(scope="module")
def batch() -> tuple[list[Record], bytes, Record]:
    """A batch of one author's records, one of them forged, and that author's key."""
    a, _b = household(2)
    records = [a.store.heads(i)[0] for i in add_items(a, PROCESS_VERIFY_MIN + 40)]
    bad = forged(records[123])
    records[123] = bad
    return records, a.identity.public_key, bad


@pytest.fixture(scope="module")
def tree_batch() -> tuple[list[Record], bytes, Record]:
    """The same, written together (an import): signed as trees of records."""
    me = DeviceIdentity.generate()
    parts = [(RecordHeader(b"V" * 16, bytes([i % 256, i // 256]) * 8, Kind.ITEM, me.device_id,
                           i, {me.device_id: i}, 5 << 16, False), b"body %d" % i)
             for i in range(1, PROCESS_VERIFY_MIN + 41)]
    records = sign_records(me, parts)
    bad = forged(records[123])
    records[123] = bad
    return records, me.public_key, bad


@pytest.fixture
def verifier() -> Iterator[HelperVerifier]:
    v = HelperVerifier(helpers=2, threads=2)
    yield v
    v.close()


def test_check_all_flags_each_pair() -> None:
    a, _b = household(2)
    [good] = [a.store.heads(i)[0] for i in add_items(a, 1)]
    key = a.identity.public_key
    bad = forged(good)
    claims = [(good.signature, good.signed_message(), b""),
              (bad.signature, bad.signed_message(), b""),
              (good.signature[:10], good.signed_message(), b""), (good.signature, b"", b"")]
    assert check_all(key, claims) == bytes([1, 0, 0, 0])


def test_helpers_catch_the_forged_record_of_a_large_batch(
        batch: tuple[list[Record], bytes, Record], verifier: HelperVerifier,
        caplog: pytest.LogCaptureFixture) -> None:
    records, key, bad = batch
    with caplog.at_level(logging.WARNING):
        checks = verifier.submit([(r, key) for r in records])
        verdicts = {r.id: checks.holds(r, key) for r in records}
    assert verifier.helpers._starts > 0  # the batch went to helper processes
    assert not caplog.records  # the helpers answered: no fallback was needed
    assert [rid for rid, ok in verdicts.items() if not ok] == [bad.id]


def test_helpers_catch_the_forged_leaf_of_a_record_tree(
        tree_batch: tuple[list[Record], bytes, Record], verifier: HelperVerifier,
        caplog: pytest.LogCaptureFixture) -> None:
    records, key, bad = tree_batch
    assert bad.proof  # a leaf of a tree whose other records hold
    with caplog.at_level(logging.WARNING):
        checks = verifier.submit([(r, key) for r in records])
        verdicts = {r.id: checks.holds(r, key) for r in records}
    assert verifier.helpers._starts > 0
    assert not caplog.records
    assert [rid for rid, ok in verdicts.items() if not ok] == [bad.id]


@pytest.mark.parametrize("size", [PARALLEL_VERIFY_MIN - 1, PARALLEL_VERIFY_MIN])
def test_small_and_medium_batches_are_checked_here_and_catch_the_forgery(
        batch: tuple[list[Record], bytes, Record], verifier: HelperVerifier,
        size: int) -> None:
    records, key, bad = batch
    part = [*records[:size - 1], bad]
    checks = verifier.submit([(r, key) for r in part])
    assert [r.id for r in part if not checks.holds(r, key)] == [bad.id]
    assert verifier.helpers._starts == 0  # no helper process for so few


def test_a_dead_helper_fails_closed_and_every_record_is_checked_here(
        batch: tuple[list[Record], bytes, Record], verifier: HelperVerifier,
        caplog: pytest.LogCaptureFixture) -> None:
    records, key, bad = batch
    for _ in range(2):  # a helper runs (one is enough: none falls behind), so the
        verifier.helpers.submit(key, [], 0).result(timeout=30)  # batch starts none afresh
    procs = [w._proc for w in verifier.helpers._helpers]
    assert len(procs) == 1
    for proc in procs:
        proc.send_signal(signal.SIGSTOP)  # still alive to us, but answering nothing
    with caplog.at_level(logging.WARNING):
        checks = verifier.submit([(r, key) for r in records])
        for proc in procs:  # each dies with its part of the batch unanswered
            proc.kill()
            proc.wait()
        verdicts = {r.id: checks.holds(r, key) for r in records}
    assert "signature helper failed" in caplog.text  # the fallback answered, no helper did
    assert [rid for rid, ok in verdicts.items() if not ok] == [bad.id]
    assert len(verdicts) == len(records)


@pytest.mark.parametrize("answer", [b"\x01" * 5, "not bytes", None])
def test_an_answer_out_of_shape_is_not_trusted(
        batch: tuple[list[Record], bytes, Record], answer: object) -> None:
    records, key, bad = batch
    future: Future[bytes] = Future()
    if answer is None:
        future.set_exception(OSError("helper exited"))
    else:
        future.set_result(answer)  # type: ignore[arg-type]
    verdicts = dict(collect(records, key, future))
    assert [rid for rid, ok in verdicts.items() if not ok] == [bad.id]


def test_replica_refuses_a_forged_record_in_a_large_batch(verifier: HelperVerifier) -> None:
    a, b = household(2)
    records = [a.store.heads(i)[0] for i in add_items(a, PROCESS_VERIFY_MIN + 10)]
    bad = forged(records[-3])
    records[-3] = bad
    replica = Replica(b.store, b.replica.vault_id, b.id, verifier=verifier, now_ms=wall_ms)
    result = replica.commit(replica.prepare(records))
    assert verifier.helpers._starts > 0
    assert result.refused == 1 and len(result.applied) == len(records) - 1
    assert not b.store.has_record(bad.id)


def test_helpers_that_cannot_start_leave_the_checks_to_us_and_are_not_retried_for_ever(
        batch: tuple[list[Record], bytes, Record], monkeypatch: pytest.MonkeyPatch) -> None:
    records, key, bad = batch
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    verifier = HelperVerifier(helpers=2, threads=2)
    try:
        for _ in range(5):
            checks = verifier.submit([(r, key) for r in records])
            verdicts = {r.id: checks.holds(r, key) for r in records}
            assert [rid for rid, ok in verdicts.items() if not ok] == [bad.id]
        assert verifier.helpers._starts == MAX_STARTS_PER_HELPER * 2
    finally:
        verifier.close()


def test_a_second_helper_starts_only_when_the_first_falls_behind(
        batch: tuple[list[Record], bytes, Record]) -> None:
    """A helper is 11 MiB: requests answered as they come need one; once each running
    helper has BEHIND requests unanswered, the next request starts another."""
    records, key, bad = batch
    claims = [(r.encoded, r.signature_at) for r in records]
    helpers = SignatureHelpers(2)
    try:
        for _ in range(3):
            assert helpers.submit(key, claims, len(claims)).result(30)[records.index(bad)] == 0
        [first] = helpers._helpers
        first._proc.send_signal(signal.SIGSTOP)  # behind from now on
        waiting = [helpers.submit(key, claims[:4], 4) for _ in range(BEHIND)]
        assert helpers._helpers == [first]
        flags = helpers.submit(key, claims, len(claims)).result(30)  # by a second helper
        assert flags[records.index(bad)] == 0 and sum(flags) == len(records) - 1
        assert len(helpers._helpers) == 2 and not any(f.done() for f in waiting)
        first._proc.send_signal(signal.SIGCONT)
        assert all(f.result(30) == b"\x01" * 4 for f in waiting)
    finally:
        helpers.close()


def test_a_second_helper_starts_when_the_first_has_many_signatures_to_check(
        batch: tuple[list[Record], bytes, Record]) -> None:
    """Records each signed alone are a signature each: one request of BEHIND_CHECKS of them
    queued is reason enough for another helper; light requests (trees) are not."""
    records, key, bad = batch
    claims = [(r.encoded, r.signature_at) for r in records]
    helpers = SignatureHelpers(2)
    try:
        assert helpers.submit(key, claims, len(claims)).result(30)[records.index(bad)] == 0
        [first] = helpers._helpers
        first._proc.send_signal(signal.SIGSTOP)
        light = helpers.submit(key, claims[:4], 1)  # a tree's worth: no reason yet
        assert helpers._helpers == [first]
        heavy = helpers.submit(key, claims[:4], BEHIND_CHECKS)  # as many as it says
        assert helpers._helpers == [first]  # the first one took it (the least unchecked)
        flags = helpers.submit(key, claims, len(claims)).result(30)  # by a second helper
        assert flags[records.index(bad)] == 0 and len(helpers._helpers) == 2
        first._proc.send_signal(signal.SIGCONT)
        assert light.result(30) == heavy.result(30) == b"\x01" * 4
    finally:
        helpers.close()


def test_helpers_inherit_no_wifisync_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The master password may sit in WIFISYNC_PASSWORD; a helper process never sees it."""
    monkeypatch.setenv("WIFISYNC_PASSWORD", "hunter2")
    helpers = SignatureHelpers(1)
    try:
        helpers.submit(b"k" * 32, [], 0).result(timeout=30)
        [helper] = helpers._helpers
        environ = Path(f"/proc/{helper._proc.pid}/environ")
        if not environ.exists():
            pytest.skip("no /proc on this system")
        assert b"hunter2" not in environ.read_bytes()
        assert b"PYTHONPATH=" not in environ.read_bytes()
        assert Path(f"/proc/{helper._proc.pid}/cwd").resolve() == Path("/")
    finally:
        helpers.close()


def test_a_module_planted_in_the_working_directory_is_never_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        batch: tuple[list[Record], bytes, Record]) -> None:
    """A ``msgpack.py`` where the daemon runs, or on PYTHONPATH, does not run in a helper."""
    marker = tmp_path / "ran"
    planted = tmp_path / "planted"
    planted.mkdir()
    for folder in (tmp_path, planted):
        for name in ("msgpack.py", "nacl.py", "wifisync.py"):
            (folder / name).write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(planted))
    monkeypatch.setenv("PYTHONSTARTUP", str(planted / "msgpack.py"))
    records, key, _bad = batch
    helpers = SignatureHelpers(1)
    try:
        claims = [(r.encoded, r.signature_at) for r in records[:3]]
        assert helpers.submit(key, claims, 3).result(timeout=30) == b"\x01\x01\x01"
    finally:
        helpers.close()
    assert not marker.exists()


def test_idle_helpers_exit_and_come_back_for_the_next_batch(
        batch: tuple[list[Record], bytes, Record]) -> None:
    records, key, bad = batch
    claims = [(r.encoded, r.signature_at) for r in records]
    helpers = SignatureHelpers(2, idle_seconds=0.3)
    try:
        for _ in range(MAX_STARTS_PER_HELPER + 1):  # idle stops are no failed starts
            flags = helpers.submit(key, claims, len(claims)).result(30)
            assert flags[records.index(bad)] == 0 and sum(flags) == len(records) - 1
            procs = [w._proc for w in helpers._helpers]
            assert procs and all(p.poll() is None for p in procs)
            deadline = time.monotonic() + 10
            while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert all(p.poll() is not None for p in procs), "idle helpers still running"
            assert not helpers._helpers
    finally:
        helpers.close()
