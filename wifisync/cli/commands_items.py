"""Vault and item commands: init, id, add, list, show, edit, rm, history, passwd."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add this module's subcommands (filled in by the CLI work)."""
    p: argparse.ArgumentParser = sub.add_parser("id", help="print this device's ID")
    p.set_defaults(func=lambda args: 0)
