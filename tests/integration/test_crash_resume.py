"""A short run of bench/faults.py: kill -9 of the receiving daemon during an initial sync,
restarted each time, and power-cut copies of its store taken mid-sync (the full loop of 20
kills over 20k records is ``bench/faults.py`` itself). The sender resends under 5 % of the
records: what the receiver had read before each kill waited in its inbox."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOAL_PERCENT = 5.0  # bench/faults.py's DUPLICATE_GOAL
TWICE = re.compile(r"records sent twice +median +([0-9.]+) %")


def test_kill_9_and_power_cuts_mid_sync_leave_whole_stores_that_resume() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "faults.py"), "--records", "2000", "--kills", "2",
         "--cuts", "2", "--seed", "16"],
        capture_output=True, text=True, timeout=240, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("WIFISYNC_")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every store passed the integrity check and the prefix rule" in done.stdout
    twice = TWICE.search(done.stdout)
    assert twice is not None, done.stdout
    assert float(twice[1]) < GOAL_PERCENT, done.stdout
    assert "all open and verify" in done.stdout
