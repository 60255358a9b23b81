"""End to end: two daemons in two lab namespaces, no static peers, find each other by mDNS."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.integration.conftest import Device, join_by_library, wait_for
from tests.lab import Lab, LabProcess, Node
from wifisync.harness import HarnessError

FIND_TIMEOUT = 20.0
PORT = 7415


def start_daemon(lab: Lab, node: Node, device: Device) -> LabProcess:
    """``wifisync daemon`` inside ``node``; its control socket is a file, reachable from here."""
    return lab.spawn(node, device.cli.argv("daemon"),
                     env=device.cli.env({"WIFISYNC_PASSWORD": None}))  # a daemon needs none


def running(procs: list[LabProcess]) -> bool:
    """True while every daemon runs; a daemon that exited fails the test at once."""
    for proc in procs:
        if proc.proc.poll() is not None:
            raise AssertionError(f"daemon in {proc.node.label} exited: {proc.errors[-20:]}")
    return True


@pytest.mark.netns
def test_daemons_find_each_other_by_mdns_and_sync(netns_lab: Lab, tmp_path: Path) -> None:
    nodes = [netns_lab.add_node("a"), netns_lab.add_node("b")]
    devices = [Device(Cli(tmp_path / f"dev{i}"), f"dev{i}", port=PORT) for i in range(2)]
    for node, device in zip(nodes, devices, strict=True):
        device.configure(listen=f"{node.address}:{PORT}", mdns=True, interfaces=[node.iface])
        assert "peers" not in device.cli.home.joinpath("config", "config.toml").read_text()
    a, b = devices
    a.cli.ok("init", "--name", a.name)
    join_by_library(a, b)

    procs = [start_daemon(netns_lab, n, d) for n, d in zip(nodes, devices, strict=True)]
    try:
        wait_for(lambda: running(procs) and a.connected_to(b) and b.connected_to(a), FIND_TIMEOUT,
                 "the daemons to find each other by mDNS and connect")
        item = a.add("router", "password=hunter2")
        wait_for(lambda: b.holds(item), FIND_TIMEOUT, "the item to reach b")
    except (AssertionError, HarnessError):
        raise AssertionError("\n".join(line for p in procs for line in p.errors[-30:])) from None
    for proc in procs:
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=15) == 0, proc.errors[-20:]
    found = [line for p in procs for line in p.errors if "mdns: member found at" in line]
    assert any(nodes[1].address in line for line in procs[0].errors if line in found)
    assert any(nodes[0].address in line for line in procs[1].errors if line in found)
    assert not any("hunter2" in line for p in procs for line in p.errors + p.lines)


@pytest.mark.netns
def test_join_finds_the_pairing_window_by_mdns(netns_lab: Lab, tmp_path: Path) -> None:
    nodes = [netns_lab.add_node("a"), netns_lab.add_node("b")]
    devices = [Device(Cli(tmp_path / f"dev{i}"), f"dev{i}", port=PORT) for i in range(2)]
    for node, device in zip(nodes, devices, strict=True):
        device.configure(listen=f"{node.address}:{PORT}", mdns=True, interfaces=[node.iface])
    a, b = devices
    a.cli.ok("init", "--name", a.name)
    procs = [start_daemon(netns_lab, nodes[0], a)]
    wait_for(lambda: running(procs) and a.status() is not None, FIND_TIMEOUT, "a to start")

    pair = netns_lab.spawn(nodes[0], a.cli.argv("pair", "--timeout", "30"), env=a.cli.env())
    code = pair.wait_for(lambda line: line.startswith("Pairing code: "), FIND_TIMEOUT).split()[-1]
    # No --address: the joiner finds the window by its nameplate over mDNS on its lab interface.
    joined = netns_lab.run(nodes[1], b.cli.argv("join", code, "--name", b.name), timeout=60,
                           env=b.cli.env())
    assert f"paired with {a.name}" in joined
    assert pair.proc.wait(timeout=FIND_TIMEOUT) == 0, pair.errors

    procs.append(start_daemon(netns_lab, nodes[1], b))
    wait_for(lambda: running(procs) and a.connected_to(b), FIND_TIMEOUT, "b to connect")
    item = a.add("router", "password=hunter2")
    wait_for(lambda: b.holds(item), FIND_TIMEOUT, "the item to reach b")
    for proc in procs:
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=15) == 0, proc.errors[-20:]
