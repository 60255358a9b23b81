"""Several devices on this machine: each a home, a free loopback port and a real daemon process."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.conftest import Cli
from wifisync import harness
from wifisync.harness import free_port as free_port
from wifisync.harness import join_by_library as join_by_library
from wifisync.harness import wait_for as wait_for


class Device(harness.Device):
    """A harness device with the suite's config: the cheapest KDF, pings every half second."""

    def configure(self, vault: Mapping[str, object] | None = None, **daemon: object) -> None:
        """Write a config: fast KDF, no mDNS, loopback listen, short pings, plus ``daemon``."""
        super().configure({"kdf_opslimit": 1} if vault is None else vault,
                          **{"ping_interval": 0.5, "peer_timeout": 2.0, **daemon})


@contextlib.contextmanager
def _device_factory(root: Path, template: Path) -> Iterator[Callable[..., list[Device]]]:
    made: list[Device] = []

    def make(n: int, **daemon: object) -> list[Device]:
        group = [Device(Cli(root / f"dev{len(made) + i}"), f"dev{len(made) + i}")
                 for i in range(n)]
        if not made:  # the first vault of a test: a copy of the session's founder (dev0)
            shutil.copytree(template, group[0].cli.home)
        for d in group:
            d.configure(**daemon)
        if made:  # a second vault in the same test is a vault of its own
            group[0].cli.ok("init", "--name", group[0].name)
        for d in group[1:]:
            join_by_library(group[0], d)
        made.extend(group)
        return group

    try:
        yield make
    finally:
        harness.stop_all(made)


@pytest.fixture
def devices(tmp_path: Path, founder_template: Path) -> Iterator[Callable[..., list[Device]]]:
    """Factory: ``devices(3)`` gives three paired devices (first one initialised, others joined)
    with configs written but no daemon running. Every daemon is stopped at the end."""
    with _device_factory(tmp_path, founder_template) as make:
        yield make


@pytest.fixture(scope="module")
def module_devices(tmp_path_factory: pytest.TempPathFactory, founder_template: Path
                   ) -> Iterator[Callable[..., list[Device]]]:
    """``devices`` for the tests of one file that share daemons (stopped after the file)."""
    with _device_factory(tmp_path_factory.mktemp("devices"), founder_template) as make:
        yield make


def pid_alive(pid: int) -> bool:
    """Whether a process exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
