"""`wifisync pair` and `wifisync join` between real daemon processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.integration.conftest import Device, wait_for

PAIR_WAIT = 30


@pytest.fixture
def make_device(tmp_path: Path) -> Iterator[Callable[[str], Device]]:
    """Devices with a loopback config and no mDNS; every daemon is stopped at the end."""
    made: list[Device] = []

    def make(name: str) -> Device:
        device = Device(Cli(tmp_path / name), name)
        device.configure()
        made.append(device)
        return device

    yield make
    for d in made:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            with contextlib.suppress(Exception):
                d.proc.wait(5)


@pytest.fixture
def member(make_device: Callable[[str], Device]) -> Device:
    """An initialised device whose daemon runs."""
    a = make_device("desktop")
    a.cli.ok("init", "--name", "desktop")
    a.start()
    return a


class Pairing:
    """A running `wifisync pair`: the code it printed, and its end."""

    def __init__(self, member: Device, *extra: str) -> None:
        self.proc = subprocess.Popen(
            member.cli.argv("pair", *extra), env=member.cli.env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        assert first.startswith("Pairing code: "), first + self.proc.stderr.read()  # type: ignore[union-attr]
        self.code = first.removeprefix("Pairing code: ").strip()

    def finish(self) -> tuple[int, str, str]:
        """Exit status, rest of stdout, stderr."""
        out, err = self.proc.communicate(timeout=PAIR_WAIT)
        return self.proc.returncode, out, err


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_pair_by_code_then_live_sync_both_ways(member: Device,
                                               make_device: Callable[[str], Device]) -> None:
    laptop = make_device("laptop")
    before = member.add("Home Wi-Fi", "password=hunter22")
    pairing = Pairing(member, "--timeout", "60")
    joined = laptop.cli.run("join", pairing.code, "--address", member.address,
                            "--name", "laptop", env={"WIFISYNC_PASSWORD": None})
    assert joined.returncode == 0, joined.stderr
    code, out, err = pairing.finish()
    assert code == 0, err
    assert f"Device laptop ({laptop.device_id}) joined." in out
    # No static peer: the joiner dials the member from the address it paired with.
    laptop.start()
    wait_for(lambda: laptop.connected_to(member) and member.connected_to(laptop), 10,
             "the session")
    wait_for(lambda: laptop.holds(before), 5, "the older item on the laptop")
    from_laptop = laptop.add("From the laptop")
    wait_for(lambda: member.holds(from_laptop), 5, "the laptop's item on the desktop")
    from_member = member.add("From the desktop")
    wait_for(lambda: laptop.holds(from_member), 5, "the desktop's item on the laptop")
    listed = laptop.cli.ok("list")  # the master password reads the vault on the joiner
    assert "Home Wi-Fi" in listed and "From the desktop" in listed
    devices = member.cli.ok("devices")
    assert "laptop" in devices


def test_wrong_code_burns_the_window(member: Device, make_device: Callable[[str], Device]
                                     ) -> None:
    laptop = make_device("laptop")
    pairing = Pairing(member, "--timeout", "60")
    nameplate, *words = pairing.code.split("-")
    guess = "-".join([nameplate, *("tiger" if w != "tiger" else "zebra" for w in words)])
    line = laptop.cli.fails("join", guess, "--address", member.address)
    assert "wrong pairing code" in line
    line = laptop.cli.fails("join", pairing.code, "--address", member.address)
    assert "no pairing window" in line or "no open pairing window" in line
    code, _out, err = pairing.finish()
    assert code == 1 and "wrong pairing code" in err and len(err.splitlines()) == 1
    assert not laptop.home.store_file.exists()
    assert not any(laptop.home.data_dir.glob("device.*"))


def test_expired_window_admits_nobody(member: Device, make_device: Callable[[str], Device]
                                      ) -> None:
    laptop = make_device("laptop")
    pairing = Pairing(member, "--timeout", "1")
    code, _out, err = pairing.finish()
    assert code == 1 and "expired" in err and len(err.splitlines()) == 1
    line = laptop.cli.fails("join", pairing.code, "--address", member.address)
    assert "pairing window" in line
    assert not laptop.home.store_file.exists()


def test_join_into_a_home_with_another_vault_is_refused_and_changes_nothing(
        member: Device, make_device: Callable[[str], Device]) -> None:
    other = make_device("other")
    other.cli.ok("init", "--name", "other")
    before = tree_digest(other.cli.home)
    members_before = member.cli.ok("devices")
    pairing = Pairing(member, "--timeout", "60")
    line = other.cli.fails("join", pairing.code, "--address", member.address)
    assert "another vault" in line
    assert tree_digest(other.cli.home) == before
    code, _out, err = pairing.finish()  # the member refused before writing anything
    assert code == 1 and "another vault" in err
    assert member.cli.ok("devices") == members_before


def test_join_on_a_device_that_holds_the_same_vault_readmits_it_keeping_everything(
        member: Device, make_device: Callable[[str], Device]) -> None:
    laptop = make_device("laptop")
    pairing = Pairing(member, "--timeout", "60")
    laptop.cli.ok("join", pairing.code, "--address", member.address)
    assert pairing.finish()[0] == 0
    item = laptop.cli.ok("add", "written on the laptop").strip()
    records = laptop.cli.ok("status", "--json")
    again = Pairing(member, "--timeout", "60")
    out = laptop.cli.ok("join", again.code, "--address", member.address)
    assert "Re-admitted" in out
    assert again.finish()[0] == 0
    assert "written on the laptop" in laptop.cli.ok("show", item)
    assert json.loads(laptop.cli.ok("status", "--json"))["vault"]["records"] \
        >= json.loads(records)["vault"]["records"]


def test_a_relay_writes_nothing_until_a_member_grants_it_the_role(
        member: Device, make_device: Callable[[str], Device]) -> None:
    nas = make_device("nas")
    pairing = Pairing(member, "--timeout", "60", "--relay")
    nas.cli.ok("join", pairing.code, "--address", member.address, "--name", "nas")
    assert pairing.finish()[0] == 0
    assert "relay" in nas.cli.fails("add", "from the nas", code=2)
    assert "relay" in member.cli.ok("devices")
    nas.peers = [member]
    nas.start()
    assert "granted nas" in member.cli.ok("grant", "nas")
    wait_for(lambda: "relay" not in nas.cli.ok("devices"), 15, "the grant to reach the nas")
    item = nas.add("from the nas")
    wait_for(lambda: member.holds(item), 15, "the nas's item on the member")


def test_pair_without_a_daemon_says_so(make_device: Callable[[str], Device]) -> None:
    alone = make_device("alone")
    alone.cli.ok("init", "--name", "alone")
    assert "daemon" in alone.cli.fails("pair")


def test_join_with_a_mistyped_code_is_a_usage_error(member: Device,
                                                    make_device: Callable[[str], Device]
                                                    ) -> None:
    laptop = make_device("laptop")
    line = laptop.cli.fails("join", "12-mapel-violin", "--address", member.address, code=2)
    assert "mapel" in line
    assert not laptop.cli.home.exists() or not laptop.home.store_file.exists()
