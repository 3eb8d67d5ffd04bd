"""A Prometheus-style histogram kept as plain counts: bumped on hot paths, read at scrape time.

Shared by the DNS server's and the proxy's metrics.
"""

from __future__ import annotations

from bisect import bisect_left


class Histogram:
    """Cumulative-at-read histogram: one count per bucket (the last is +Inf) and a sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            out.append((repr(bound), running))
        running += self.counts[-1]
        out.append(("+Inf", running))
        return out

    def quantile(self, q: float) -> float | None:
        """An upper bound of the q-quantile (the bucket it falls in); None when empty."""
        n = sum(self.counts)
        if n == 0:
            return None
        rank = q * n
        running = 0
        for i, count in enumerate(self.counts):
            running += count
            if running >= rank:
                return self.bounds[i] if i < len(self.bounds) else float("inf")
        return float("inf")

    def estimate(self, q: float) -> float | None:
        """The q-quantile interpolated inside its bucket, as Prometheus's histogram_quantile
        does; None when empty."""
        total = sum(self.counts)
        if total == 0:
            return None
        rank = q * total
        running = 0
        lower = 0.0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            if running + count >= rank and count:
                return lower + (bound - lower) * (rank - running) / count
            running += count
            lower = bound
        return self.bounds[-1]
