"""Where a daemon is reached: ``HOST:PORT`` (IPv6 in brackets) read and written, and its URLs."""

from __future__ import annotations

import ipaddress

SYNC_PATH = "/sync"  # members' WebSocket (a member's certificate only)
PAIR_PATH = "/pair"  # a joiner's WebSocket (no certificate, while a pairing window is open)


def parse_address(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6); raise ``ValueError`` when malformed."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"expected HOST:PORT, got {text!r}") from None
    elif ":" in host or "[" in host or "]" in host or any(c.isspace() for c in host):
        raise ValueError(f"expected HOST:PORT (IPv6 in brackets), got {text!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port must be 1-65535, got {text!r}")
    return host, port


def format_address(host: str, port: int) -> str:
    """``HOST:PORT``, IPv6 in brackets: what ``parse_address`` reads back."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url(scheme: str, host: str, port: int, path: str) -> str:
    """``scheme://HOST:PORT/path`` (IPv6 in brackets)."""
    return f"{scheme}://{format_address(host, port)}{path}"
