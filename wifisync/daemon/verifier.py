"""The daemon's :class:`~wifisync.model.verifier.Verifier`: checks run off the event loop's core.

Large batches go to helper processes (:mod:`wifisync.daemon.sighelpers`), medium ones to
a thread pool (Ed25519 releases the GIL), small ones are checked on the spot. Whatever a
helper fails to answer is checked in-process: no record is ever taken as signed without
a check. The daemon creates one, injects it into its replica, and closes it when it stops.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from wifisync.daemon.sighelpers import IDLE_SECONDS, SignatureHelpers
from wifisync.model.records import TREE_LEAVES, Record
from wifisync.model.verifier import Claim, Verdicts, check_claims

log = logging.getLogger(__name__)

PARALLEL_VERIFY_MIN = 64  # records below which handing work to threads costs more than it saves
PROCESS_VERIFY_MIN = 256  # records from which helper processes check (no GIL hand-offs)
CORES = max(1, min(4, os.cpu_count() or 1))  # helper processes, and threads, at most


class HelperVerifier:
    """Checks signatures off the caller's thread; owned (and closed) by the daemon."""

    def __init__(self, helpers: int = CORES, threads: int = CORES,
                 idle_seconds: float = IDLE_SECONDS) -> None:
        self.helpers = SignatureHelpers(helpers, idle_seconds)
        self._threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="wifisync-verify")

    def submit(self, claims: Sequence[Claim]) -> Verdicts:
        """Start checking ``claims``; :meth:`Verdicts.holds` waits for the answers."""
        if len(claims) >= PROCESS_VERIFY_MIN:
            return self._in_helpers(claims)
        if len(claims) < PARALLEL_VERIFY_MIN:
            results = dict(check_claims(claims))
            return Verdicts(claims, lambda: results)
        parts = min(self._threads * 2, len(claims) // (PARALLEL_VERIFY_MIN // 2))
        size = -(-len(claims) // parts)
        futures = [self._pool.submit(check_claims, claims[i:i + size])
                   for i in range(0, len(claims), size)]
        return Verdicts(claims, lambda: {rid: ok for f in futures for rid, ok in f.result()})

    def _in_helpers(self, claims: Sequence[Claim]) -> Verdicts:
        """Each author's records split over the helpers, one request per helper (a record
        tree's signature is checked once per request, so a chunk keeps trees whole)."""
        by_key: dict[bytes, list[Record]] = {}
        for r, k in claims:
            by_key.setdefault(k, []).append(r)
        sent: list[tuple[list[Record], bytes, Future[bytes]]] = []
        for key, records in by_key.items():
            size = -(-len(records) // self._threads // TREE_LEAVES) * TREE_LEAVES
            for i in range(0, len(records), size):
                chunk = records[i:i + size]
                sent.append((chunk, key, self.helpers.submit(
                    key, ((r.encoded, r.signature_at) for r in chunk),
                    len({r.signature for r in chunk}))))
        return Verdicts(claims, lambda: {rid: ok for chunk, key, future in sent
                                         for rid, ok in collect(chunk, key, future)})

    def close(self) -> None:
        """Stop the helper processes and the threads."""
        self.helpers.close()
        self._pool.shutdown(wait=True)


def collect(chunk: list[Record], key: bytes, future: Future[bytes]
            ) -> list[tuple[bytes, bool]]:
    """A helper's answers for ``chunk``, or our own checks when it gave none we can use."""
    try:
        flags = future.result()
        if isinstance(flags, bytes) and len(flags) == len(chunk) \
                and set(flags) <= {0, 1}:
            return [(r.id, flag == 1) for r, flag in zip(chunk, flags, strict=True)]
        log.warning("signature helper answered out of shape; checking here")
    except Exception as exc:  # the helper could not start or died: check here
        log.warning("signature helper failed (%s); checking here", exc)
    return check_claims([(r, key) for r in chunk])
