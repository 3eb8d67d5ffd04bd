"""Passive health: a backend that fails too often in a row is taken out for a cool-down.

Pure: the caller says what happened and when. A failure is a connection error, a timeout, or a
5xx answer; any other answer is a success and clears the count. After `threshold` consecutive
failures the backend is out until `now + cooldown`; when the cool-down is over it is tried
again on probation: one more failure takes it straight back out, one success clears it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Passive:
    failures: int = 0  # consecutive failures seen
    out_until: float = 0.0  # clock time until which the backend is out; 0 when it is not

    def is_out(self, now: float) -> bool:
        return now < self.out_until


CLEAR = Passive()


def record(p: Passive, ok: bool, now: float, threshold: int, cooldown: float) -> Passive:
    """The state after one more outcome; `p` itself when nothing changes (compare with `is`)."""
    if ok:
        return p if p.failures == 0 and p.out_until == 0.0 else CLEAR
    if p.is_out(now):
        return p  # already out: requests that were in flight do not extend the cool-down
    failures = p.failures + 1
    if failures >= max(1, threshold):
        # Probation after the cool-down: one failure short of the threshold.
        return Passive(failures=max(0, threshold - 1), out_until=now + cooldown)
    return Passive(failures=failures, out_until=0.0)
