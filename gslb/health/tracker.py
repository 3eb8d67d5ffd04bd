"""Rise/fall hysteresis for one health-checked target: pure, no I/O, no clock of its own.

Public API (stable; used by the DNS server's scheduler and by the proxy):

    Health                      frozen value: the measured state of one target
    INITIAL                     the state before any probe result (up, not yet confirmed)
    observe(h, ok, detail, now, rise, fall) -> Health

Semantics, after gdnsd's monitors: the first result decides at once (nothing is known yet, so
there is nothing to be sticky about). After that a target that is up goes down only after `fall`
consecutive failures, and one that is down comes back only after `rise` consecutive successes; a
result that agrees with the current state resets the progress toward a flip. `rise`/`fall` below
1 count as 1. `observe` returns `h` itself when nothing changes, so callers can compare with `is`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Health:
    """The measured state of one target."""

    up: bool
    confirmed: bool  # False until the first probe result arrived
    streak: int  # consecutive results agreeing with the opposite state: progress toward a flip
    last_detail: str  # what the last probe said: "HTTP 503", "timeout after 2s", ...
    changed_at: float  # clock time of the last flip (or of the first result)


# Optimistic start: a target counts as up until its first result says otherwise, so that a
# freshly (re)started server does not fail every region over before it has measured anything.
INITIAL = Health(up=True, confirmed=False, streak=0, last_detail="", changed_at=0.0)


def observe(h: Health, ok: bool, detail: str, now: float, rise: int, fall: int) -> Health:
    """The state after one more probe result `ok` (described by `detail`) at time `now`."""
    if not h.confirmed:
        return Health(up=ok, confirmed=True, streak=0, last_detail=detail, changed_at=now)
    if ok == h.up:
        if h.streak == 0 and h.last_detail == detail:
            return h
        return Health(h.up, True, 0, detail, h.changed_at)
    streak = h.streak + 1
    if streak >= max(1, rise if ok else fall):
        return Health(up=ok, confirmed=True, streak=0, last_detail=detail, changed_at=now)
    return Health(h.up, True, streak, detail, h.changed_at)
