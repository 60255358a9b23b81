"""Who may even start a TLS handshake: caps per source and overall, before anyone is known.

A stranger on the LAN can open thousands of TCP connections or start handshakes and
never finish them. Each of those costs the daemon a file descriptor and some memory, so
until a connection is a member's (its certificate verified and current) it counts
against its source (an IPv4 address or an IPv6 /64) and against the whole daemon. A source
that keeps wasting connections (handshakes left to time out, certificate-less connections
that hold a pairing slot) is refused for a while. The
policy is plain bookkeeping with the clock as an argument; ``net.server`` applies it.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from dataclasses import dataclass

MAX_TRACKED_SOURCES = 4096  # the oldest source's history is forgotten beyond this


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """The caps; :meth:`for_open_files` sizes them to the open-file limit the daemon has."""

    handshakes: int = 64  # TLS handshakes in progress, all sources
    handshakes_per_source: int = 8
    unauthenticated: int = 128  # connections not (yet) a member's, handshakes included
    unauthenticated_per_source: int = 16
    strikes: int = 12  # wasted connections of a source within strike_window (a handshake that
    strike_window: float = 60.0  # timed out, a certificate-less one) before it is refused

    @classmethod
    def for_open_files(cls, soft_limit: int) -> AdmissionLimits:
        """Leave most descriptors to members, the store and the CLI: at most 1/4 to strangers."""
        budget = max(16, soft_limit // 4)
        return cls(handshakes=min(64, budget // 2), unauthenticated=min(128, budget))


def source_of(host: str) -> str:
    """The unit a cap applies to: an IPv4 address, or the /64 of an IPv6 address."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


class Admission:
    """Counts connections that are not a member's yet, and says who may start another."""

    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self.handshakes = 0
        self.unauthenticated = 0
        self._handshakes: dict[str, int] = {}
        self._unauthenticated: dict[str, int] = {}
        self._strikes: OrderedDict[str, deque[float]] = OrderedDict()

    def _penalised(self, source: str, now: float) -> bool:
        strikes = self._strikes.get(source)
        if strikes is None:
            return False
        while strikes and now - strikes[0] > self.limits.strike_window:
            strikes.popleft()
        return len(strikes) >= self.limits.strikes

    def strike(self, source: str, now: float) -> None:
        """A connection of ``source`` was wasted: idle through its handshake, or anonymous."""
        strikes = self._strikes.pop(source, None)
        if strikes is None:
            strikes = deque(maxlen=self.limits.strikes)
        strikes.append(now)
        self._strikes[source] = strikes
        while len(self._strikes) > MAX_TRACKED_SOURCES:
            self._strikes.popitem(last=False)

    def accept(self, source: str, now: float) -> bool:
        """Whether a fresh TCP connection from ``source`` may start its handshake."""
        lim = self.limits
        if (self.handshakes >= lim.handshakes or self.unauthenticated >= lim.unauthenticated
                or self._handshakes.get(source, 0) >= lim.handshakes_per_source
                or self._unauthenticated.get(source, 0) >= lim.unauthenticated_per_source
                or self._penalised(source, now)):
            return False
        self.handshakes += 1
        self.unauthenticated += 1
        _add(self._handshakes, source, 1)
        _add(self._unauthenticated, source, 1)
        return True

    def handshake_over(self, source: str) -> None:
        """The TLS handshake of an accepted connection finished or failed."""
        self.handshakes -= 1
        _add(self._handshakes, source, -1)

    def authenticated(self, source: str) -> None:
        """The connection showed a current member's certificate: it no longer counts."""
        self.unauthenticated -= 1
        _add(self._unauthenticated, source, -1)

    def closed_unauthenticated(self, source: str, now: float, *, wasted: bool) -> None:
        """An accepted connection that never became a member's ended.

        ``wasted``: it held its slot for nothing (handshake timed out, or it had no
        certificate). A refused certificate is not a strike: a revoked or stale member
        backs off by itself, and a source shared with members must not lock them out.
        """
        self.unauthenticated -= 1
        _add(self._unauthenticated, source, -1)
        if wasted:
            self.strike(source, now)


def _add(counts: dict[str, int], key: str, delta: int) -> None:
    value = counts.get(key, 0) + delta
    if value > 0:
        counts[key] = value
    else:
        counts.pop(key, None)
