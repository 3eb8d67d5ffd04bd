"""Counts over the last minute and the last 5 minutes, from samples of cumulative counters.

The DNS path only bumps cumulative counters (gslb.metrics.DnsStats). Once a second, and
whenever the status is read, the runtime hands their current totals to `sample`, which
puts what grew since the previous sample into the bucket of the current second: a ring of
one-second buckets, as many as the longest window has seconds, so memory is bounded by
the window and the number of keys, whatever the query rate. A window's count is the sum
of its last `seconds` buckets (the current, partial, second included), read against the
clock at reading time: a window whose seconds have passed without answers reads 0 even if
no sample came in between. Pure apart from the clock, which is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Window:
    name: str  # as in /v1/status: "last_1m"
    seconds: int


WINDOWS = (Window("last_1m", 60), Window("last_5m", 300))


@dataclass(frozen=True, slots=True)
class WindowCounts(Generic[K]):
    """What one window holds when read."""

    window: Window
    covered: float  # seconds of the window the counter has seen (less just after start)
    counts: Mapping[K, int]  # keys with a count > 0 only


class RecentCounts(Generic[K]):
    """Per-key counts over sliding windows, fed with cumulative totals."""

    def __init__(
        self,
        windows: Sequence[Window] = WINDOWS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not windows or min(w.seconds for w in windows) < 1:
            raise ValueError("windows of at least one second")
        self.windows = tuple(windows)
        self._clock = clock
        self._start = clock()
        self._size = max(w.seconds for w in self.windows)
        # slot i holds the counts of second `_seconds[i]` (seconds since the start)
        self._seconds: list[int] = [-1] * self._size
        self._buckets: list[dict[K, int]] = [{} for _ in range(self._size)]
        self._last: dict[K, int] = {}  # the totals at the previous sample

    def _second(self) -> tuple[float, int]:
        elapsed = max(0.0, self._clock() - self._start)
        return elapsed, int(elapsed)

    def sample(self, totals: Mapping[K, int]) -> None:
        """The cumulative counts now: what grew since the previous sample is this second's.

        A total that went down (a counter that restarted) counts from its new value on."""
        _, second = self._second()
        last = self._last
        grown = {k: v - last.get(k, 0) for k, v in totals.items() if v > last.get(k, 0)}
        self._last = dict(totals)
        if not grown:
            return
        slot = second % self._size
        if self._seconds[slot] != second:
            self._seconds[slot] = second
            self._buckets[slot] = {}
        bucket = self._buckets[slot]
        for key, n in grown.items():
            bucket[key] = bucket.get(key, 0) + n

    def read(self) -> list[WindowCounts[K]]:
        """Each window's counts, as of the clock now."""
        elapsed, second = self._second()
        out = []
        for window in self.windows:
            counts: dict[K, int] = {}
            oldest = second - window.seconds  # buckets of seconds after this one are in
            for at, bucket in zip(self._seconds, self._buckets, strict=True):
                if oldest < at <= second:
                    for key, n in bucket.items():
                        counts[key] = counts.get(key, 0) + n
            out.append(WindowCounts(window, min(float(window.seconds), elapsed), counts))
        return out
