"""Attachments between two real daemons on 127.0.0.1: exact, complete, and in bounded memory."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.integration.conftest import Device, join_by_library, wait_for
from tests.memory import cli_peak_kib, memory_kib, reset_peak
from wifisync.model.crypto import KdfParams
from wifisync.model.identity import DeviceIdentity
from wifisync.model.records import CHUNK_BYTES
from wifisync.store.sqlite import SqliteStore
from wifisync.sync.session import WINDOW_BYTES
from wifisync.vault.unlocked import Vault

MIB = 1024 * 1024
FAST_KDF = KdfParams.fresh(1)  # the cheapest the CLI accepts (64 MiB, tests/memory.py)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Device, Device, str]]:
    """Devices A and B of one vault with daemons running and connected; an item on A.

    Shared by the tests of this file (each leaves both daemons running and connected)."""
    root = tmp_path_factory.mktemp("pair")
    a, b = Device(Cli(root / "a"), "a"), Device(Cli(root / "b"), "b")
    for d in (a, b):
        d.configure()
    a.home.ensure()
    ident = DeviceIdentity.generate()
    ident.save(a.home.data_dir)
    store = SqliteStore(a.home.store_file)
    vault = Vault.create(store, ident, "a", a.cli.password or "", FAST_KDF)
    item = vault.add("Passport").hex()
    store.close()
    join_by_library(a, b)
    b.peers = [a]
    try:
        a.start()
        b.start()
        wait_for(lambda: a.connected_to(b) and b.connected_to(a), 10, "the session")
        yield a, b, item
    finally:
        for d in (a, b):
            if d.proc is not None:
                d.stop()


def get_bytes(device: Device, item: str, name: str) -> bytes:
    r = subprocess.run(device.cli.argv("get", item, "--attachment", name), capture_output=True,
                       env=device.cli.env(), stdin=subprocess.DEVNULL, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def names_on(device: Device, item: str) -> set[str]:
    import json

    r = device.cli.run("attachments", item, "--json")
    return {a["name"] for a in json.loads(r.stdout)} if r.returncode == 0 else set()


def test_attachments_of_every_boundary_size_arrive_exactly_while_both_run(
        pair: tuple[Device, Device, str], tmp_path: Path) -> None:
    a, b, item = pair
    # The last one spans several of the sender's windows of unacknowledged bytes.
    files = {f"f{size}.bin": os.urandom(size)
             for size in (0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1,
                          3 * WINDOW_BYTES + 1)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        a.cli.ok("attach", item, str(tmp_path / name))
    wait_for(lambda: set(files) <= names_on(b, item) and b.record_count() == a.record_count(),
             30, "every attachment on B")
    for name, data in files.items():
        assert get_bytes(b, item, name) == data


def test_a_device_that_was_down_catches_up_on_a_large_attachment(
        pair: tuple[Device, Device, str], tmp_path: Path) -> None:
    a, b, item = pair
    assert b.stop() == 0
    data = os.urandom(12 * MIB + 5)
    (tmp_path / "scan.tiff").write_bytes(data)
    a.cli.ok("attach", item, str(tmp_path / "scan.tiff"))
    b.start()
    wait_for(lambda: b.record_count() == a.record_count(), 30, "B to catch up")
    assert get_bytes(b, item, "scan.tiff") == data
    wait_for(lambda: a.connected_to(b) and b.connected_to(a), 10, "the session again")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_memory_stays_bounded_while_a_large_attachment_moves(
        pair: tuple[Device, Device, str], tmp_path: Path) -> None:
    a, b, item = pair
    (tmp_path / "one.bin").write_bytes(b"x")
    (tmp_path / "big.bin").write_bytes(os.urandom(32 * MIB))
    env = a.cli.env()
    home = ["--home", str(a.cli.home)]
    base_cli = cli_peak_kib([*home, "attach", item, str(tmp_path / "one.bin")], env)
    wait_for(lambda: b.record_count() == a.record_count(), 10, "the small one on B")
    assert a.proc is not None and b.proc is not None
    daemons = {"A": a.proc.pid, "B": b.proc.pid}
    base = {}
    for name, pid in daemons.items():
        base[name] = reset_peak(pid)
    big_cli = cli_peak_kib([*home, "attach", item, str(tmp_path / "big.bin")], env)
    wait_for(lambda: b.record_count() == a.record_count(), 60, "the big one on B")
    growth = {name: (memory_kib(pid, "VmHWM") - base[name]) / 1024
              for name, pid in daemons.items()}
    growth["CLI"] = (big_cli - base_cli) / 1024
    assert max(growth.values()) < 16, growth  # MiB, for a 32 MiB attachment


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_a_relay_holds_little_for_a_stalled_peer_and_catches_it_up(
        devices: Callable[..., list[Device]], tmp_path: Path) -> None:
    a, relay, c = devices(3, peer_timeout=60.0)
    relay.peers = [a]
    c.peers = [relay]
    for d in (a, relay, c):
        d.start()
    wait_for(lambda: relay.connected_to(a) and c.connected_to(relay), 10, "the chain A-R-C")
    item = a.add("Passport")
    wait_for(lambda: c.holds(item), 10, "the item on C")
    assert relay.proc is not None and c.proc is not None
    base = reset_peak(relay.proc.pid)
    c.proc.send_signal(signal.SIGSTOP)  # C stops reading: the relay's link to it backs up
    try:
        data = os.urandom(32 * MIB)
        (tmp_path / "scan.bin").write_bytes(data)
        a.cli.ok("attach", item, str(tmp_path / "scan.bin"))
        wait_for(lambda: relay.record_count() == a.record_count(), 60, "the file on R")
    finally:
        c.proc.send_signal(signal.SIGCONT)
    growth = (memory_kib(relay.proc.pid, "VmHWM") - base) / 1024
    wait_for(lambda: c.record_count() == a.record_count(), 60, "the file on C")
    assert c.connected_to(relay)  # caught up on the same link, no reconnect needed
    assert growth < 16, f"the relay grew {growth:.1f} MiB"
    assert get_bytes(c, item, "scan.bin") == data
