"""What the daemon's process sets up for itself before its imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
