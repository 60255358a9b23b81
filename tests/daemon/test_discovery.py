"""mDNS discovery: real multicast between processes in a namespace lab (members, pairing)."""

from __future__ import annotations

import sys
import time

import pytest

from tests.lab import Lab, LabProcess, Node
from wifisync.daemon.discovery import DiscoveryManager
from wifisync.errors import ConfigError

VAULT = bytes(range(16))
OTHER_VAULT = bytes(range(1, 17))
FIND_TIMEOUT = 15.0

async def test_unknown_interface_is_one_clear_config_error() -> None:
    manager = DiscoveryManager(
        interfaces=["wsync-nope0"], port=1, vault_id=VAULT, instance="t", on_found=print
    )
    with pytest.raises(ConfigError, match="no such network interface: wsync-nope0"):
        await manager.async_start()
    assert not manager.running


# --- real multicast in the lab ------------------------------------------------------------


def start_member(
    lab: Lab, node: Node, vault: bytes, port: int, *extra: str
) -> LabProcess:
    """A discovery process for ``vault`` bound to ``node``'s lab interface."""
    return lab.python(
        node,
        [
            "-m", "tests.daemon.discovery_peer", "member", "--iface", node.iface,
            "--port", str(port), "--vault", vault.hex(), "--name", node.label, *extra,
        ],
    )  # fmt: skip


def find_pairing(lab: Lab, node: Node, nameplate: str, timeout: float) -> str:
    """Run one async_find_pairing inside ``node``; its single output line."""
    args = ["-m", "tests.daemon.discovery_peer", "find", "--iface", node.iface,
            "--nameplate", nameplate, "--timeout", str(timeout)]  # fmt: skip
    proc = lab.python(node, args)
    proc.proc.wait(timeout=timeout + 20)
    return proc.wait_for(lambda line: line.startswith(("pairing ", "error ")), 5)


def found(node: Node, port: int) -> str:
    return f"found {node.address} {port}"


def stop_cleanly(*procs: LabProcess) -> None:
    for proc in procs:
        assert proc.stop() == 0, proc.errors[-10:]
        assert proc.lines[-1] == "stopped"
        # zeroconf logs a send error once per socket (with a traceback) while a link is down;
        # any other traceback, or a background task of ours that failed, is a bug.
        tracebacks = sum(line.startswith("Traceback") for line in proc.errors)
        send_errors = sum("zeroconf Error with socket" in line for line in proc.errors)
        assert tracebacks == send_errors, proc.errors
        assert not any("failed:" in line for line in proc.errors), proc.errors


@pytest.mark.netns
def test_members_find_each_other_and_ignore_another_vault(netns_lab: Lab) -> None:
    a, b, c = (netns_lab.add_node(x) for x in "abc")
    pa = start_member(netns_lab, a, VAULT, 4001)
    pb = start_member(netns_lab, b, VAULT, 4002)
    pc = start_member(netns_lab, c, OTHER_VAULT, 4003)
    start = time.monotonic()
    pa.wait_for(lambda line: line == found(b, 4002), FIND_TIMEOUT)
    pb.wait_for(lambda line: line == found(a, 4001), FIND_TIMEOUT)
    print(f"members found each other in {time.monotonic() - start:.2f} s", file=sys.stderr)

    # Each member saw the outsider's service and refused its tag; the outsider refused both.
    for proc, outsider_sighting in ((pa, c), (pb, c), (pc, a), (pc, b)):
        deadline = time.monotonic() + FIND_TIMEOUT
        while not any(
            "not a member's tag" in line and outsider_sighting.address in line
            for line in proc.errors
        ):
            assert time.monotonic() < deadline, (proc.node.label, proc.errors[-10:])
            time.sleep(0.1)
    assert not any(c.address in line for line in pa.lines + pb.lines)
    assert not any(line.startswith("found") for line in pc.lines)
    # Nobody reports itself.
    assert found(a, 4001) not in pa.lines
    assert found(b, 4002) not in pb.lines
    stop_cleanly(pa, pb, pc)


@pytest.mark.netns
def test_pairing_service_is_found_by_nameplate_and_withdrawn(netns_lab: Lab) -> None:
    a, b = netns_lab.add_node("a"), netns_lab.add_node("b")
    pa = start_member(netns_lab, a, VAULT, 4001)
    pa.wait_for(lambda line: line == "advertised", FIND_TIMEOUT)
    pa.send("pair 4711 4100")
    pa.wait_for(lambda line: line == "pairing-advertised", FIND_TIMEOUT)

    assert find_pairing(netns_lab, b, "4711", FIND_TIMEOUT) == f"pairing {a.address} 4100"
    assert find_pairing(netns_lab, b, "4712", 2).startswith("error no device offers pairing")

    pa.send("withdraw")
    pa.wait_for(lambda line: line == "pairing-withdrawn", FIND_TIMEOUT)
    assert find_pairing(netns_lab, b, "4711", 3).startswith("error no device offers pairing")

    # The synchronous form, as a window callback uses it: quick changes take effect in order.
    for command in ("show 4713 4100", "hide", "show 4714 4101"):
        pa.send(command)
    assert find_pairing(netns_lab, b, "4714", FIND_TIMEOUT) == f"pairing {a.address} 4101"
    assert find_pairing(netns_lab, b, "4713", 2).startswith("error no device offers pairing")
    stop_cleanly(pa)


@pytest.mark.netns
@pytest.mark.parametrize("side", ["hub", "node"])
def test_member_is_found_again_after_its_link_is_cut_and_restored(
    netns_lab: Lab, side: str
) -> None:
    a, b = netns_lab.add_node("a"), netns_lab.add_node("b")
    pa = start_member(netns_lab, a, VAULT, 4001)
    pb = start_member(netns_lab, b, VAULT, 4002)
    pa.wait_for(lambda line: line == found(b, 4002), FIND_TIMEOUT)
    pb.wait_for(lambda line: line == found(a, 4001), FIND_TIMEOUT)
    pa.wait_for(lambda line: line == "advertised", FIND_TIMEOUT)

    netns_lab.cut(a, side)
    deadline = time.monotonic() + FIND_TIMEOUT
    while not any("interface wsv0 is down" in line for line in pa.errors):
        assert time.monotonic() < deadline, pa.errors[-10:]
        time.sleep(0.1)
    seen_a, seen_b = len(pa.lines), len(pb.lines)
    time.sleep(1.0)  # stay cut a moment: announcements sent now are lost
    assert pa.proc.poll() is None and pb.proc.poll() is None

    netns_lab.restore(a, side)
    start = time.monotonic()
    pa.wait_for(lambda line: line == found(b, 4002), FIND_TIMEOUT, start=seen_a)
    pb.wait_for(lambda line: line == found(a, 4001), FIND_TIMEOUT, start=seen_b)
    print(f"found again {time.monotonic() - start:.2f} s after restore", file=sys.stderr)
    stop_cleanly(pa, pb)


@pytest.mark.netns
def test_tag_rollover_reannounces_under_new_names_and_members_keep_matching(
    netns_lab: Lab,
) -> None:
    a, b = netns_lab.add_node("a"), netns_lab.add_node("b")
    short = ("--window-seconds", "3")
    pa = start_member(netns_lab, a, VAULT, 4001, *short)
    pb = start_member(netns_lab, b, VAULT, 4002, *short)
    pb.wait_for(lambda line: line == found(a, 4001), FIND_TIMEOUT)
    # Three rollovers: each one a new tag under a new instance name, found again by the peer.
    for _ in range(3):
        seen = len(pb.lines)
        pb.wait_for(lambda line: line == found(a, 4001), FIND_TIMEOUT, start=seen)
    rollovers = [line for line in pa.errors if "tag window rolled over" in line]
    assert len(rollovers) >= 2, pa.errors[-10:]
    assert not any("not a member's tag" in line for line in pa.errors + pb.errors)
    stop_cleanly(pa, pb)
