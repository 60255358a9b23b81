"""Starting, asking and stopping a home's unlock agent, from the CLI side."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from wifisync import errors
from wifisync.agent.protocol import AgentUnavailable, call
from wifisync.errors import WifisyncError
from wifisync.vault.unlocked import Vault

START_TIMEOUT_S = 30.0


def agent_key(runtime_dir: Path, vault_id: bytes) -> bytes | None:
    """The vault key from a running agent of this home, or None when the vault is locked."""
    try:
        reply = call(runtime_dir, {"op": "key"})
    except AgentUnavailable:
        return None
    if not reply.get("ok") or reply.get("vault") != vault_id.hex():
        return None
    try:
        return bytes.fromhex(str(reply["key"]))
    except (KeyError, ValueError):
        return None


def agent_status(runtime_dir: Path) -> dict[str, Any] | None:
    """``{"until": epoch seconds or None, "pid": ...}`` of a running agent, else None."""
    try:
        reply = call(runtime_dir, {"op": "status"})
    except AgentUnavailable:
        return None
    return reply if reply.get("ok") else None


def stop_agent(runtime_dir: Path) -> bool:
    """Tell a running agent to forget the key and exit; False when none was running."""
    try:
        return bool(call(runtime_dir, {"op": "lock"}).get("ok"))
    except AgentUnavailable:
        return False


def start_agent(config_dir: Path, data_dir: Path, runtime_dir: Path, vault_key: bytes,
                timeout_s: float) -> None:
    """Start a detached agent and hand it the key over a pipe; returns once it listens."""
    import subprocess  # not for the commands that only ask an agent

    root = str(Path(__file__).resolve().parents[2])
    # No WIFISYNC_* variable reaches the agent: the master password may be one of them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIFISYNC_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", "wifisync.agent", "--config-dir", str(config_dir),
            "--data-dir", str(data_dir), "--runtime-dir", str(runtime_dir)]
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=env, cwd="/", start_new_session=True, close_fds=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(json.dumps({"key": vault_key.hex(), "timeout": timeout_s}).encode()
                         + b"\n")
        proc.stdin.close()
        line = proc.stdout.readline().decode(errors="replace").strip()
    except OSError as exc:
        raise WifisyncError(f"the unlock agent did not start: {exc}") from None
    finally:
        proc.stdout.close()
    if line != "ready":
        proc.wait(timeout=START_TIMEOUT_S)
        reason = line.removeprefix("error ").strip() or f"exit status {proc.returncode}"
        raise WifisyncError(f"the unlock agent did not start: {reason}")


class AgentVault(Vault):
    """A vault opened with the agent's key that also finds items through the agent's index,
    so naming an item by title does not decrypt the whole vault."""

    runtime_dir: Path | None = None

    def resolve(self, ref: str) -> bytes:
        """As :meth:`Vault.resolve`, answered by the agent when it runs."""
        if self.runtime_dir is None:
            return super().resolve(ref)
        try:
            reply = call(self.runtime_dir, {"op": "resolve", "item": ref})
        except AgentUnavailable:
            return super().resolve(ref)
        if reply.get("ok"):
            return bytes.fromhex(str(reply["id"]))
        kind = getattr(errors, str(reply.get("kind")), None)
        if isinstance(kind, type) and issubclass(kind, WifisyncError):
            raise kind(str(reply.get("error")))
        return super().resolve(ref)
