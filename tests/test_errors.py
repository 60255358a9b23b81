"""One error tree: every exception the package defines derives from ``WifisyncError``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import wifisync
from wifisync.errors import WifisyncError


def test_every_exception_the_package_defines_is_in_the_error_tree() -> None:
    outside = []
    for info in pkgutil.walk_packages(wifisync.__path__, "wifisync."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if (cls.__module__ == info.name and issubclass(cls, BaseException)
                    and not issubclass(cls, WifisyncError)):
                outside.append(f"{info.name}.{name}")
    assert not outside, f"exceptions outside the error tree (wifisync/errors.py): {outside}"
