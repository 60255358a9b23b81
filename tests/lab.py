"""A private network lab: namespaces on a bridge of their own, so real multicast never leaves it.

Layout: one hub namespace holds a bridge; every node is a namespace with one veth (``wsv0``) whose
peer sits on the hub's bridge. Nothing is created in the host's own namespace, addresses come
from a /24 the test picks (10.231.X.0/24 by default) and everything is deleted on close.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NODE_IFACE = "wsv0"
COMMAND_TIMEOUT = 10.0


@functools.cache
def netns_unavailable_reason() -> str | None:
    """Why this machine cannot run the lab, or None; found by really adding a namespace."""
    if shutil.which("ip") is None:
        return "iproute2 ('ip') is not installed; install it (apt-get install -y iproute2)"
    probe = f"wsync-probe-{secrets.token_hex(3)}"
    added = subprocess.run(
        ["ip", "netns", "add", probe], capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )
    if added.returncode != 0:
        return f"'ip netns add' is not permitted here (needs root): {added.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=COMMAND_TIMEOUT)
    return None


def _ip(*args: str) -> None:
    """Run one `ip` command; a failure is a lab failure with the command's own words."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass(frozen=True, slots=True)
class Node:
    """One device's namespace: its name, its interface and its address in the lab's /24."""

    label: str
    netns: str
    iface: str
    address: str
    hub_iface: str

    def argv(self, command: Sequence[str]) -> list[str]:
        """The command line that runs ``command`` inside this node."""
        return ["ip", "netns", "exec", self.netns, *command]


@dataclass
class Lab:
    """A hub bridge and the nodes on it; use as a context manager so it is always torn down."""

    subnet: str  # first three octets, e.g. "10.231.57"
    prefix: str = field(default_factory=lambda: f"wsync-{secrets.token_hex(3)}")
    nodes: dict[str, Node] = field(default_factory=dict)
    _namespaces: list[str] = field(default_factory=list)
    _processes: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def hub(self) -> str:
        """The namespace that holds the bridge."""
        return f"{self.prefix}-hub"

    def __enter__(self) -> Lab:
        try:
            self._add_netns(self.hub)
            _ip("-n", self.hub, "link", "set", "lo", "up")
            _ip("-n", self.hub, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
            _ip("-n", self.hub, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self._namespaces.append(name)

    def add_node(self, label: str) -> Node:
        """A new namespace with ``lo`` up and one veth on the bridge, addressed in the /24."""
        host_part = len(self.nodes) + 2
        node = Node(
            label=label,
            netns=f"{self.prefix}-{label}",
            iface=NODE_IFACE,
            address=f"{self.subnet}.{host_part}",
            hub_iface=f"h-{label}"[:15],
        )
        self._add_netns(node.netns)
        _ip("-n", node.netns, "link", "set", "lo", "up")
        # Both ends are created straight inside their namespaces: the host never sees them.
        _ip(
            "-n", node.netns, "link", "add", node.iface, "type", "veth",
            "peer", "name", node.hub_iface, "netns", self.hub,
        )  # fmt: skip
        _ip("-n", self.hub, "link", "set", node.hub_iface, "master", "br0", "up")
        _ip("-n", node.netns, "addr", "add", f"{node.address}/24", "dev", node.iface)
        _ip("-n", node.netns, "link", "set", node.iface, "multicast", "on", "up")
        # mDNS is link-local (224.0.0.251): a route for it on the lab interface is all we need.
        _ip("-n", node.netns, "route", "add", "224.0.0.0/4", "dev", node.iface)
        self.nodes[label] = node
        return node

    def run(
        self,
        node: Node,
        command: Sequence[str],
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Run a command to completion inside ``node``; its stdout, or an error with stderr."""
        done = subprocess.run(
            node.argv(command), capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} in {node.label}: {done.stderr.strip()}")
        return done.stdout

    def spawn(
        self, node: Node, command: Sequence[str], env: Mapping[str, str] | None = None
    ) -> LabProcess:
        """Start a long-running command inside ``node``; killed at teardown if still running."""
        proc = subprocess.Popen(
            node.argv(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
        )
        self._processes.append(proc)
        return LabProcess(node, proc)

    def python(self, node: Node, args: Sequence[str]) -> LabProcess:
        """Start this repository's Python inside ``node``."""
        return self.spawn(node, [sys.executable, *args])

    def cut(self, node: Node, side: str = "hub") -> None:
        """Partition ``node``: down its bridge port ("hub") or its own interface ("node")."""
        self._set_link(node, side, "down")

    def restore(self, node: Node, side: str = "hub") -> None:
        """Undo :meth:`cut`."""
        self._set_link(node, side, "up")

    def _set_link(self, node: Node, side: str, state: str) -> None:
        if side == "hub":
            _ip("-n", self.hub, "link", "set", node.hub_iface, state)
        elif side == "node":
            _ip("-n", node.netns, "link", "set", node.iface, state)
            if state == "up":
                # Taking the link down dropped its routes; bring the multicast route back.
                with contextlib.suppress(RuntimeError):
                    _ip("-n", node.netns, "route", "add", "224.0.0.0/4", "dev", node.iface)
        else:
            raise ValueError(f"side must be 'hub' or 'node', not {side!r}")

    def close(self) -> None:
        """Stop every process started here and delete every namespace (veths go with them)."""
        for proc in self._processes:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self._processes.clear()
        for name in reversed(self._namespaces):
            subprocess.run(
                ["ip", "netns", "del", name], capture_output=True, timeout=COMMAND_TIMEOUT
            )
        self._namespaces.clear()


class LabProcess:
    """A process in a lab node whose stdout and stderr lines can be awaited with a deadline."""

    def __init__(self, node: Node, proc: subprocess.Popen[str]) -> None:
        self.node = node
        self.proc = proc
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._events: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        for stream, sink in ((proc.stdout, self.lines), (proc.stderr, self.errors)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _pump(self, stream: object, sink: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._lock:
                sink.append(line.rstrip("\n"))
            self._events.put(line)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, start: int = 0) -> str:
        """The first stdout line from index ``start`` on that matches within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for line in self.lines[start:]:
                    if predicate(line):
                        return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.node.label}: no matching line within {timeout} s; "
                    f"stdout={self.lines[-20:]} stderr={self.errors[-20:]}"
                )
            with contextlib.suppress(queue.Empty):
                self._events.get(timeout=min(remaining, 0.5))

    def send(self, line: str) -> None:
        """Write one line to the process's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=timeout)


@contextlib.contextmanager
def lab(subnet: str | None = None) -> Iterator[Lab]:
    """A fresh lab in 10.231.X.0/24 (X random unless given), torn down however the test ends."""
    with Lab(subnet or f"10.231.{secrets.randbelow(250) + 2}") as built:
        yield built
