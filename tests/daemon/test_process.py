"""What the daemon's process sets up for itself before its imports."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from wifisync.daemon.process import run_daemon

LOADED_CAS = ("import ssl, sys; {setup}; "
              "sys.stdout.write(str(ssl.create_default_context().cert_store_stats()['x509_ca']))")


def _cas_loaded(setup: str) -> int:
    done = subprocess.run([sys.executable, "-c", LOADED_CAS.format(setup=setup)],
                          capture_output=True, text=True, timeout=60, check=True)
    return int(done.stdout)


def test_the_daemon_loads_no_certificate_authority() -> None:
    """Pinned member certificates only: not even the system's CA bundle is read."""
    if _cas_loaded("pass") == 0:
        pytest.skip("this system has no CA bundle to leave out")
    setup = "from wifisync.daemon.process import trust_no_authority; trust_no_authority()"
    assert _cas_loaded(setup) == 0


def test_the_daemon_runs_on_uvloop_wherever_it_is_a_dependency() -> None:
    """uvloop is a dependency except on Windows: missing it elsewhere is a broken install,
    not a fallback to take quietly."""

    async def running_loop() -> str:
        return type(asyncio.get_running_loop()).__module__

    module = run_daemon(running_loop())
    if sys.platform == "win32":
        assert module.startswith("asyncio")
    else:
        assert module.startswith("uvloop"), module
