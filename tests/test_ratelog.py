"""gslb/ratelog.py: one line per kind per interval, with the count suppressed; bounded kinds."""

from __future__ import annotations

import logging

import pytest

from gslb.ratelog import OVERFLOW, Gate, RateLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_event_per_kind_per_interval_with_the_count() -> None:
    clock = Clock()
    gate = Gate(interval=10.0, clock=clock)
    assert gate.admit("a") == 0
    assert [gate.admit("a") for _ in range(5)] == [None] * 5
    assert gate.admit("b") == 0  # kinds are independent
    clock.now += 9.9
    assert gate.admit("a") is None
    clock.now += 0.2
    assert gate.admit("a") == 6
    assert gate.admit("a") is None


def test_kinds_are_bounded() -> None:
    clock = Clock()
    gate = Gate(interval=10.0, max_kinds=4, clock=clock)
    admitted = [gate.admit(f"kind{i}") for i in range(1000)]
    assert len(gate) == 5  # four kinds and the one all later kinds share
    assert admitted[:5] == [0] * 5
    assert admitted[5:] == [None] * 995
    clock.now += 11
    assert gate.admit("brand new") == 995
    assert OVERFLOW in gate._kinds


def test_rate_log_writes_one_line_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = RateLog(logging.getLogger("test.ratelog"), Gate(interval=5.0, clock=clock))
    with caplog.at_level(logging.DEBUG, logger="test.ratelog"):
        for _ in range(1000):
            log.error("bad", "bad packet from %s", "192.0.2.1")
        clock.now += 6
        log.error("bad", "bad packet from %s", "192.0.2.1")
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "bad packet from 192.0.2.1",
        "bad packet from 192.0.2.1 (999 more like this suppressed)",
    ]


def test_rate_log_keeps_the_traceback_of_the_line_it_writes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = RateLog(logging.getLogger("test.ratelog2"), Gate(clock=Clock()))
    with caplog.at_level(logging.ERROR, logger="test.ratelog2"):
        for _ in range(3):
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("boom", "failed")
    assert len(caplog.records) == 1
    assert caplog.records[0].exc_info is not None
