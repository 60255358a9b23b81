"""``python -m wifisync``: the same CLI as the ``wifisync`` command."""

from __future__ import annotations

import sys

from wifisync.cli.main import main

sys.exit(main())
