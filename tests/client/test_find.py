"""Finding a pairing window: interfaces mDNS cannot use are one clear error, before any lookup."""

from __future__ import annotations

import pytest

from wifisync.client.find import async_find_pairing
from wifisync.errors import ConfigError


async def test_unknown_or_unusable_interface_is_one_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="no such network interface: wsync-nope0"):
        await async_find_pairing("7", interfaces=["wsync-nope0"], timeout=1)
    # Loopback is never announced on: it has no address discovery would use.
    with pytest.raises(ConfigError, match="no IPv4 address on lo"):
        await async_find_pairing("7", interfaces=["lo"], timeout=1)
