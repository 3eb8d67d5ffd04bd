"""The query path's rate-limited log: one line per kind per interval, a count of the rest."""

from __future__ import annotations

import logging

import pytest

from gslb.ratelog import RateLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_kind_per_interval_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    ratelog = RateLog(logging.getLogger("t.ratelog"), interval=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="t.ratelog"):
        assert ratelog.warning("ecs", "bad option from %s", "a")
        assert not any(ratelog.warning("ecs", "bad option from %s", "b") for _ in range(99))
        assert ratelog.warning("other", "another kind")  # kinds are limited apart
        clock.now += 10.0
        assert ratelog.warning("ecs", "bad option from %s", "c")
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "bad option from a",
        "another kind",
        "bad option from c (and 99 more like it in the last 10 s)",
    ]


def test_the_table_of_kinds_is_bounded() -> None:
    ratelog = RateLog(logging.getLogger("t.ratelog.bound"), max_kinds=8, clock=Clock())
    for i in range(1000):
        ratelog.warning(f"kind{i}", "x")
        assert len(ratelog) <= 8
