"""wifisync: a password vault kept identical on a household's own machines."""

from __future__ import annotations

__version__ = "0.1.0"
