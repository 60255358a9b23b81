"""Copying a secret to the desktop clipboard with the platform's tools, and clearing it later.

The value goes to the tool on its standard input, never in argv. The clear runs in a
detached child (``python -m wifisync.cli.clipboard SECONDS TOOL``) that gets the value over a
pipe, sleeps, and empties the clipboard only if it still holds that value.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from wifisync.errors import WifisyncError

TOOL_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Tool:
    """One clipboard program: how to copy, read back and clear."""

    name: str
    copy: tuple[str, ...]
    paste: tuple[str, ...]
    clear: tuple[str, ...]
    needs: str | None  # environment variable that must be set (the display), if any


TOOLS = (
    Tool("wl-copy", ("wl-copy",), ("wl-paste", "--no-newline"), ("wl-copy", "--clear"),
         "WAYLAND_DISPLAY"),
    Tool("xclip", ("xclip", "-selection", "clipboard"), ("xclip", "-selection", "clipboard", "-o"),
         ("xclip", "-selection", "clipboard"), "DISPLAY"),
    Tool("xsel", ("xsel", "--clipboard", "--input"), ("xsel", "--clipboard", "--output"),
         ("xsel", "--clipboard", "--clear"), "DISPLAY"),
    Tool("pbcopy", ("pbcopy",), ("pbpaste",), ("pbcopy",), None),
)


class NoClipboardError(WifisyncError):
    """No clipboard tool or no display to use."""


def find_tool() -> Tool:
    """The first tool whose program is installed and whose display is there."""
    for tool in TOOLS:
        if tool.needs is not None and not os.environ.get(tool.needs):
            continue
        if tool.name == "pbcopy" and sys.platform != "darwin":
            continue
        if shutil.which(tool.copy[0]) and shutil.which(tool.paste[0]):
            return tool
    raise NoClipboardError("no clipboard here: --clip needs wl-clipboard (Wayland), xclip or "
                           "xsel (X11), or pbcopy (macOS), and a display; print the value "
                           "without --clip instead")


def _run(argv: tuple[str, ...], data: str = "") -> str:
    done = subprocess.run(list(argv), input=data.encode(), capture_output=True,
                          timeout=TOOL_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise NoClipboardError(f"{argv[0]} failed: "
                               f"{done.stderr.decode(errors='replace').strip()[:200]}")
    return done.stdout.decode(errors="replace")


def copy(value: str, clear_after: int) -> Tool:
    """Put ``value`` on the clipboard; start the clearer unless ``clear_after`` is 0."""
    tool = find_tool()
    # wl-copy and xclip stay in the background to serve the selection: give them no pipes
    # of ours to hold open, and the value on stdin only.
    proc = subprocess.Popen(list(tool.copy), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, close_fds=True)
    assert proc.stdin is not None
    proc.stdin.write(value.encode())
    proc.stdin.close()
    if proc.wait(timeout=TOOL_TIMEOUT_S) != 0:
        raise NoClipboardError(f"{tool.copy[0]} failed (exit status {proc.returncode})")
    if clear_after > 0:
        _start_clearer(tool, value, clear_after)
    return tool


def _start_clearer(tool: Tool, value: str, seconds: int) -> None:
    root = str(Path(__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIFISYNC_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wifisync.cli.clipboard", str(seconds), tool.name],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=env, cwd="/", start_new_session=True, close_fds=True)
    assert proc.stdin is not None
    proc.stdin.write(value.encode())
    proc.stdin.close()


def clear_later(seconds: int, tool_name: str, value: str) -> None:
    """Sleep, then empty the clipboard if it still holds ``value``."""
    tool = next(t for t in TOOLS if t.name == tool_name)
    time.sleep(seconds)
    try:
        if _run(tool.paste) == value:
            _run(tool.clear)
    except (NoClipboardError, OSError, subprocess.TimeoutExpired):
        pass


def main(argv: list[str]) -> int:
    """The detached clearer: ``SECONDS TOOL``, the value on standard input."""
    from wifisync.agent.memory import harden_process

    harden_process()  # it holds a secret for a while: no core file, no ptrace
    value = sys.stdin.buffer.read().decode()
    sys.stdin.close()
    clear_later(int(argv[0]), argv[1], value)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
