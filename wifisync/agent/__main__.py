"""``python -m wifisync.agent``: the unlock agent process."""

from __future__ import annotations

import sys

from wifisync.agent.server import main

sys.exit(main())
