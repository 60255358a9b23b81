"""Admission before TLS: caps per source and overall, and a source that wastes slots waits."""

from __future__ import annotations

from wifisync.daemon.admission import Admission, AdmissionLimits, source_of


def test_caps_per_source_and_overall() -> None:
    adm = Admission(AdmissionLimits(handshakes=5, handshakes_per_source=2, unauthenticated=6,
                                    unauthenticated_per_source=3))
    assert adm.accept("10.0.0.1", 0) and adm.accept("10.0.0.1", 0)
    assert not adm.accept("10.0.0.1", 0)  # two handshakes in progress from that source
    adm.handshake_over("10.0.0.1")
    assert adm.accept("10.0.0.1", 0)
    adm.handshake_over("10.0.0.1")
    assert not adm.accept("10.0.0.1", 0)  # three unauthenticated connections held
    adm.authenticated("10.0.0.1")  # one became a member's: it no longer counts
    assert adm.accept("10.0.0.1", 0)
    for n in range(2, 5):
        assert adm.accept(f"10.0.0.{n}", 0)
    assert adm.handshakes == 5 and not adm.accept("10.0.0.9", 0)  # global cap


def test_a_source_that_keeps_wasting_connections_is_refused_until_it_calms_down() -> None:
    adm = Admission(AdmissionLimits(strikes=3, strike_window=60))
    for t in range(3):
        assert adm.accept("10.0.0.7", t)
        adm.handshake_over("10.0.0.7")
        adm.closed_unauthenticated("10.0.0.7", t, wasted=True)
    assert not adm.accept("10.0.0.7", 10)
    assert adm.accept("10.0.0.8", 10)  # others are not affected
    assert adm.accept("10.0.0.7", 70)  # the strikes aged out


def test_a_refused_certificate_is_no_strike() -> None:
    adm = Admission(AdmissionLimits(strikes=2))
    for t in range(5):
        assert adm.accept("10.0.0.7", t)
        adm.handshake_over("10.0.0.7")
        adm.closed_unauthenticated("10.0.0.7", t, wasted=False)
    assert adm.unauthenticated == 0 and adm.handshakes == 0


def test_sources_are_addresses_and_ipv6_prefixes() -> None:
    assert source_of("192.168.1.5") == "192.168.1.5"
    assert source_of("fe80::1%eth0") == source_of("fe80::2") == "fe80::/64"
    assert source_of("::ffff:10.0.0.1") == "10.0.0.1"
