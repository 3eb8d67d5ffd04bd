"""gslb.rates: counts over the last minute and 5 minutes, driven by a fake clock."""

from __future__ import annotations

import pytest

from gslb.rates import RecentCounts, Window
from tests.runtime_inprocess import FakeClock


def counts(recent: RecentCounts[str]) -> dict[str, dict[str, int]]:
    return {w.window.name: dict(w.counts) for w in recent.read()}


def test_what_grew_between_samples_leaves_each_window_when_its_time_is_up() -> None:
    clock = FakeClock()
    recent: RecentCounts[str] = RecentCounts(clock=clock)
    recent.sample({"eu": 10})  # in second 0
    clock.advance(30)
    recent.sample({"eu": 10, "us": 5})  # eu did not grow: nothing new for it
    assert counts(recent) == {"last_1m": {"eu": 10, "us": 5}, "last_5m": {"eu": 10, "us": 5}}
    clock.advance(29.9)  # second 59: second 0 is still in the last 60
    assert counts(recent)["last_1m"] == {"eu": 10, "us": 5}
    clock.advance(0.1)  # second 60: the last minute is seconds 1..60
    assert counts(recent) == {"last_1m": {"us": 5}, "last_5m": {"eu": 10, "us": 5}}
    clock.advance(30)  # second 90: us's second 30 is out too, without a sample
    assert counts(recent) == {"last_1m": {}, "last_5m": {"eu": 10, "us": 5}}
    clock.advance(210)  # second 300
    assert counts(recent)["last_5m"] == {"us": 5}
    clock.advance(30)
    assert counts(recent)["last_5m"] == {}


def test_the_ring_keeps_exactly_the_last_seconds_however_long_it_runs() -> None:
    clock = FakeClock()
    recent: RecentCounts[str] = RecentCounts(clock=clock)
    total = 0
    for second in range(1, 1001):  # one more answer every second, each a different number
        clock.advance(1)
        total += second
        recent.sample({"x": total})
    # seconds 941..1000 and 701..1000
    assert counts(recent) == {
        "last_1m": {"x": sum(range(941, 1001))},
        "last_5m": {"x": sum(range(701, 1001))},
    }


def test_several_samples_in_one_second_add_up_and_covered_grows_to_the_window() -> None:
    clock = FakeClock()
    recent: RecentCounts[tuple[str, str]] = RecentCounts(clock=clock)
    key = ("www.gslb.example.com.", "eu-west")
    for total in (1, 2, 5):
        clock.advance(0.2)
        recent.sample({key: total})
    one, five = recent.read()
    assert (one.window, five.window) == (Window("last_1m", 60), Window("last_5m", 300))
    assert one.counts == {key: 5} and five.counts == {key: 5}
    assert one.covered == pytest.approx(0.6) and five.covered == pytest.approx(0.6)
    clock.advance(100)
    one, five = recent.read()
    assert one.covered == 60 and five.covered == pytest.approx(100.6)


def test_a_counter_that_restarts_counts_from_its_new_value() -> None:
    clock = FakeClock()
    recent: RecentCounts[str] = RecentCounts(clock=clock)
    recent.sample({"a": 50})
    clock.advance(1)
    recent.sample({"a": 3})  # went down: no negative count
    clock.advance(1)
    recent.sample({"a": 7})
    assert counts(recent)["last_1m"] == {"a": 54}


def test_a_clock_that_steps_back_does_not_count_the_future() -> None:
    clock = FakeClock()
    recent: RecentCounts[str] = RecentCounts(clock=clock)
    clock.advance(10)
    recent.sample({"a": 1})
    clock.advance(-20)  # before the start: taken as second 0
    recent.sample({"a": 2})
    assert counts(recent)["last_1m"] == {"a": 1}  # second 10 is ahead of now
    clock.advance(20)
    assert counts(recent)["last_1m"] == {"a": 2}


def test_windows_need_a_second() -> None:
    with pytest.raises(ValueError):
        RecentCounts([Window("none", 0)])
