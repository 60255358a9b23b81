"""A short run of bench/faults.py: kill -9 of the receiving daemon during an initial sync,
restarted each time, and power-cut copies of its store taken mid-sync (the full loop of 20
kills over 20k records is ``bench/faults.py`` itself)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_kill_9_and_power_cuts_mid_sync_leave_whole_stores_that_resume() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "faults.py"), "--records", "2000", "--kills", "2",
         "--cuts", "2", "--seed", "16"],
        capture_output=True, text=True, timeout=240, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("WIFISYNC_")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every store passed the integrity check and the prefix rule" in done.stdout
    assert "all open and verify" in done.stdout
