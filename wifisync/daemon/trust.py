"""The daemon's TLS trust: which certificates are current members', for both directions.

The listener's member context and the dialer's client context trust exactly the current
members' certificates; both are rebuilt when membership changes. Certificate checks of a
connection (is this a current member's certificate? did the peer's TLS stack refuse
ours?) live here too.
"""

from __future__ import annotations

import ssl

from wifisync.errors import IntegrityError
from wifisync.model.identity import device_id_of_certificate
from wifisync.model.membership import Member
from wifisync.net import tls


class Trust:
    """The current members and the TLS contexts that trust exactly them."""

    def __init__(self, creds: tls.Credentials, vault_id: bytes,
                 members: dict[bytes, Member]) -> None:
        self.creds = creds
        self.vault_id = vault_id
        self.members = members
        self.listener = tls.TrustedListener(creds, self._pems(), vault_id)
        self.client_context = tls.client_context(creds, self._pems())

    def _pems(self) -> list[bytes]:
        return [tls.der_to_pem(m.cert_der) for m in self.members.values()]

    def update(self, members: dict[bytes, Member]) -> None:
        """New members: new handshakes in both directions trust exactly them."""
        self.members = members
        pems = self._pems()
        self.listener.update(pems)
        self.client_context = tls.client_context(self.creds, pems)

    def is_member_cert(self, cert_der: bytes) -> bool:
        """Whether ``cert_der`` is a current member's certificate, byte for byte."""
        try:
            device = device_id_of_certificate(cert_der)
        except IntegrityError:
            return False
        member = self.members.get(device)
        return member is not None and member.cert_der == cert_der


def is_tls_refusal(exc: BaseException) -> bool:
    """Whether a failed dial was the peer's TLS stack refusing our certificate."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        if isinstance(current, ssl.SSLError) and "alert" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False
