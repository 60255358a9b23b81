"""Log lines for the journal and the repeat limiter."""

from __future__ import annotations

import logging

from wifisync.daemon.logsetup import JournalFormatter, RepeatLimiter


def _record(level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("wifisync.daemon", level, __file__, 1, msg, args, None)


def test_a_repeated_warning_is_held_back_then_counted() -> None:
    now = [0.0]
    limiter = RepeatLimiter(window=60.0, clock=lambda: now[0])
    warn = "peer %s refused: %s; not retrying for %.0f s"
    assert limiter.filter(_record(logging.WARNING, warn, "10.0.0.2:7415", "bad cert", 30.0))
    for delay in (60.0, 120.0, 240.0):  # the same warning with another retry delay
        now[0] += 10
        assert not limiter.filter(_record(logging.WARNING, warn, "10.0.0.2:7415", "bad cert",
                                          delay))
    assert limiter.filter(_record(logging.WARNING, warn, "10.0.0.3:7415", "bad cert", 30.0))
    assert limiter.filter(_record(logging.INFO, "connected to %s", "X"))
    assert limiter.filter(_record(logging.INFO, "connected to %s", "X"))
    now[0] = 61.0
    again = _record(logging.WARNING, warn, "10.0.0.2:7415", "bad cert", 480.0)
    assert limiter.filter(again)
    assert again.getMessage().endswith("(and 3 more like it in the last 1 min)")


def test_journal_lines_carry_the_syslog_priority_on_every_line() -> None:
    fmt = JournalFormatter("%(message)s")
    assert fmt.format(_record(logging.WARNING, "a\nb")) == "<4>a\n<4>b"
    assert fmt.format(_record(logging.DEBUG, "x")) == "<7>x"
    assert fmt.format(_record(logging.ERROR, "x")) == "<3>x"
    assert fmt.format(_record(logging.INFO, "x")) == "<6>x"
