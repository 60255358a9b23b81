"""Issue 11's household: a laptop that is behind revokes the lost phone; nothing splits for good.

The laptop pairs the phone and is switched off; the phone pairs the tablet and both write;
the laptop, still behind, revokes the phone. Real daemons, real pairing, through the CLI.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.cli.test_pairing import Pairing, make_device  # noqa: F401 - fixture
from tests.integration.conftest import Device, wait_for

SYNC_WAIT = 15


def pair(member: Device, newcomer: Device, name: str) -> str:
    """``pair`` on the member, ``join CODE`` on the newcomer; returns what join printed."""
    pairing = Pairing(member, "--timeout", "60")
    out = newcomer.cli.ok("join", pairing.code, "--address", member.address, "--name", name)
    code, _out, err = pairing.finish()
    assert code == 0, err
    return out


def test_a_revoker_that_is_behind_splits_nothing_for_good(
        make_device: Callable[[str], Device]) -> None:  # noqa: F811 - the fixture
    laptop, phone, tablet = make_device("laptop"), make_device("phone"), make_device("tablet")
    laptop.cli.ok("init", "--name", "laptop")
    laptop.start()
    pair(laptop, phone, "phone")
    phone.peers = [laptop]
    phone.start()
    early = laptop.add("Home Wi-Fi", "password=hunter22")
    wait_for(lambda: phone.holds(early), SYNC_WAIT, "the laptop's item on the phone")
    assert laptop.stop() == 0  # switched off

    pair(phone, tablet, "tablet")  # the laptop never hears of this
    tablet.peers = [phone]
    tablet.start()
    from_phone = phone.add("Written on the phone")
    from_tablet = tablet.add("Written on the tablet")
    wait_for(lambda: tablet.holds(from_phone) and phone.holds(from_tablet), SYNC_WAIT,
             "phone and tablet to sync")
    assert phone.stop() == 0  # lost

    said = laptop.cli.ok("revoke", "phone")  # the laptop is still behind
    assert "last heard from it" in said and "made inactive here" in said
    laptop.peers = [tablet]
    laptop.start()
    tablet.stop()
    tablet.peers = [laptop]
    tablet.start()
    # The laptop does not know the tablet: its daemon refuses it (so far, the split).
    wait_for(lambda: "refused" in laptop.log(), SYNC_WAIT, "the laptop to refuse the tablet")
    assert not laptop.connected_to(tablet) and not tablet.connected_to(laptop)

    # One pairing from the laptop brings the tablet back, with everything it holds.
    assert "Re-admitted" in pair(laptop, tablet, "tablet")
    wait_for(lambda: laptop.holds(from_tablet) and laptop.holds(from_phone)
             and tablet.holds(early), SYNC_WAIT * 2, "laptop and tablet to converge")
    for device in (laptop, tablet):
        listed = device.cli.ok("list")
        for title in ("Home Wi-Fi", "Written on the phone", "Written on the tablet"):
            assert title in listed, (device.name, listed)
        devices = device.cli.ok("devices")
        assert "phone" in devices and "revoked" in devices
        assert "not admitted" not in devices
