"""Reads' verifier: a large batch split over threads still names every forgery."""

from __future__ import annotations

import threading

from tests.model.test_verifier import forged, signed_records
from wifisync.model.verifier import failed
from wifisync.vault.threadverifier import PARALLEL_CHECK_MIN, ThreadVerifier


def test_a_large_batch_on_threads_names_each_forgery_and_leaves_no_thread() -> None:
    records, key = signed_records(2 * PARALLEL_CHECK_MIN + 10)
    for i in (0, 300, len(records) - 1):
        records[i] = forged(records[i])
    before = threading.active_count()
    bad = failed(ThreadVerifier(threads=2), [(r, key) for r in records])
    assert {r.id for r in bad} == {records[i].id for i in (0, 300, len(records) - 1)}
    assert threading.active_count() == before  # the pool lived for that call only
