"""``make demo`` works on this checkout and leaves nothing behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_demo_runs_the_round_trip_and_cleans_up() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIFISYNC_")}
    env["PYTHONPATH"] = str(REPO)
    r = subprocess.run([sys.executable, "-m", "wifisync.demo"], capture_output=True, text=True,
                       env=env, timeout=300, check=False, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    for command in ("init", "add", "list", "show", "edit", "history", "rm", "passwd"):
        assert f"$DEMO/laptop {command}" in r.stdout, command
    assert "correct-horse" in r.stdout and "battery-staple" in r.stdout
    # Item passwords go in through --secret prompts (stdin), never a child's argv.
    assert "password=" not in r.stdout
    assert "--secret password" in r.stdout and "password: popcorn" in r.stdout
    demo_dir = re.search(r"^DEMO=(.+)$", r.stdout, re.M)
    assert demo_dir and not Path(demo_dir.group(1)).exists()
