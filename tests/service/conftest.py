"""The integration suite's devices (real homes, real daemon processes) for the service tests."""

from __future__ import annotations

from tests.integration.conftest import devices

__all__ = ["devices"]
