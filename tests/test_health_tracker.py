"""The rise/fall tracker, driven by tables of probe results.

A result sequence is written as a string: "+" a success, "-" a failure. The expected trace has
one letter per result: "U" up, "D" down, then the streak after that result.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gslb.health.tracker import INITIAL, Health, observe


def run(results: str, rise: int, fall: int, start: Health = INITIAL) -> list[Health]:
    trace = []
    h = start
    for t, r in enumerate(results, start=1):
        h = observe(h, r == "+", "ok" if r == "+" else "HTTP 503", float(t), rise, fall)
        trace.append(h)
    return trace


def letters(trace: list[Health]) -> str:
    return " ".join(f"{'U' if h.up else 'D'}{h.streak}" for h in trace)


# (rise, fall, results, expected trace)
CASES = [
    # The first result decides at once, whichever way.
    (2, 3, "+", "U0"),
    (2, 3, "-", "D0"),
    (5, 5, "-+", "D0 D1"),
    # Up goes down after exactly `fall` consecutive failures.
    (2, 3, "+---", "U0 U1 U2 D0"),
    (2, 1, "+-", "U0 D0"),
    # A success in between resets the count.
    (2, 3, "+--+--", "U0 U1 U2 U0 U1 U2"),
    (2, 3, "+--+---", "U0 U1 U2 U0 U1 U2 D0"),
    # Down comes back after exactly `rise` consecutive successes.
    (2, 3, "-++", "D0 D1 U0"),
    (3, 3, "-+-++-+++", "D0 D1 D0 D1 D2 D0 D1 D2 U0"),
    (1, 1, "-+-+", "D0 U0 D0 U0"),
    # Agreeing results keep the state and a zero streak.
    (2, 2, "++++", "U0 U0 U0 U0"),
    (2, 2, "----", "D0 D0 D0 D0"),
    # rise/fall below 1 behave as 1.
    (0, 0, "+-+", "U0 D0 U0"),
    (-3, -3, "-+", "D0 U0"),
]


@pytest.mark.parametrize(("rise", "fall", "results", "expected"), CASES)
def test_trace(rise: int, fall: int, results: str, expected: str) -> None:
    trace = run(results, rise, fall)
    assert letters(trace) == expected
    assert all(h.confirmed for h in trace)


def test_initial_is_optimistic_and_unconfirmed() -> None:
    assert INITIAL.up is True
    assert INITIAL.confirmed is False
    assert INITIAL.streak == 0


# (results, rise, fall, expected changed_at after the last result): results happen at t=1,2,...
CHANGED_AT = [
    ("+", 2, 3, 1.0),  # the first result counts as a change
    ("-", 2, 3, 1.0),
    ("+++", 2, 3, 1.0),  # agreeing results keep it
    ("+---", 2, 3, 4.0),  # the flip at the third failure
    ("+--", 2, 3, 1.0),  # progress toward a flip is not a flip
    ("-++-", 2, 1, 4.0),
]


@pytest.mark.parametrize(("results", "rise", "fall", "changed_at"), CHANGED_AT)
def test_changed_at(results: str, rise: int, fall: int, changed_at: float) -> None:
    assert run(results, rise, fall)[-1].changed_at == changed_at


def test_detail_is_the_last_result() -> None:
    h = observe(INITIAL, True, "HTTP 200", 1.0, 2, 3)
    h = observe(h, False, "timeout after 2s", 2.0, 2, 3)
    assert h.last_detail == "timeout after 2s"
    assert h.up is True  # one failure of three


def test_unchanged_state_returns_the_same_object() -> None:
    h = observe(INITIAL, True, "HTTP 200", 1.0, 2, 3)
    assert observe(h, True, "HTTP 200", 2.0, 2, 3) is h
    assert observe(h, True, "HTTP 204", 2.0, 2, 3) is not h


def test_starting_from_a_given_state() -> None:
    down = replace(INITIAL, up=False, confirmed=True, changed_at=0.5)
    assert letters(run("+", 2, 3, down)) == "D1"
    assert letters(run("++", 2, 3, down)) == "D1 U0"


def reference_up(results: list[bool], rise: int, fall: int) -> bool:
    """State by definition: the first result, then flips after enough agreeing results in a row."""
    up = results[0]
    run_len = 0
    for ok in results[1:]:
        run_len = run_len + 1 if ok != up else 0
        if run_len >= (rise if ok else fall):
            up, run_len = ok, 0
    return up


@given(
    st.lists(st.booleans(), min_size=1, max_size=60),
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=1, max_value=5),
)
def test_matches_the_definition(results: list[bool], rise: int, fall: int) -> None:
    h = INITIAL
    for t, ok in enumerate(results):
        h = observe(h, ok, "", float(t), rise, fall)
        assert h.streak < (fall if h.up else rise)
    assert h.up == reference_up(results, rise, fall)
