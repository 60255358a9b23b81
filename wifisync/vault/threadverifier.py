"""The :class:`~wifisync.model.verifier.Verifier` of reads: large batches split over the cores.

Listing 10k items checks 10k signatures when no mark stands in for them; Ed25519 releases
the GIL, so threads share the work. The threads live for one call and are joined before it
returns: nothing outlives a read, so the CLI and the agent own nothing to close.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from wifisync.model.verifier import Claim, Verdicts, check_claims

PARALLEL_CHECK_MIN = 256  # records per thread below which splitting costs more than it saves


class ThreadVerifier:
    """Checks a batch now, on up to one thread per core."""

    def __init__(self, threads: int | None = None) -> None:
        self._threads = threads or os.cpu_count() or 1

    def submit(self, claims: Sequence[Claim]) -> Verdicts:
        """Check ``claims`` before returning."""
        workers = min(self._threads, len(claims) // PARALLEL_CHECK_MIN)
        if workers < 2:
            results = dict(check_claims(claims))
        else:
            from concurrent.futures import ThreadPoolExecutor  # not for a one-item read

            with ThreadPoolExecutor(workers, thread_name_prefix="wifisync-read") as pool:
                parts = pool.map(check_claims, [claims[i::workers] for i in range(workers)])
                results = {rid: ok for part in parts for rid, ok in part}
        return Verdicts(claims, lambda: results)
