"""Rate-limited logging for paths hostile input can reach (the DNS query path).

A log line per bad packet lets one client fill the disk and slow every answer. Each
line is given a *kind* (a short fixed string, never derived from the input); per kind,
at most one line is written per interval, and the next one written says how many were
suppressed since. The number of kinds is bounded: kinds beyond `max_kinds` share one
more, `OVERFLOW`.

`Gate` is the pure part (clock injected); `RateLog` writes through a `logging.Logger`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

OVERFLOW = "other"  # the kind every kind beyond `max_kinds` is counted as


class Gate:
    """Per kind: admit one event per `interval` seconds, count the rest."""

    def __init__(
        self,
        interval: float = 10.0,
        max_kinds: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.max_kinds = max(1, max_kinds)
        self._clock = clock
        self._kinds: dict[str, list[float | int]] = {}  # kind -> [admitted at, suppressed]

    def admit(self, kind: str) -> int | None:
        """None: suppress this event; else admit it, with the number suppressed before it."""
        now = self._clock()
        slot = self._kinds.get(kind)
        if slot is None:
            if len(self._kinds) >= self.max_kinds:
                kind = OVERFLOW
                slot = self._kinds.get(kind)
            if slot is None:
                self._kinds[kind] = [now, 0]
                return 0
        if now - slot[0] < self.interval:
            slot[1] += 1
            return None
        suppressed = int(slot[1])
        slot[0], slot[1] = now, 0
        return suppressed

    def __len__(self) -> int:
        return len(self._kinds)


class RateLog:
    """A logger whose lines are gated per kind (see `Gate`)."""

    def __init__(self, logger: logging.Logger, gate: Gate | None = None) -> None:
        self._logger = logger
        self._gate = gate if gate is not None else Gate()

    def log(
        self, level: int, kind: str, message: str, *args: object, exc_info: bool = False
    ) -> None:
        if not self._logger.isEnabledFor(level):
            return
        suppressed = self._gate.admit(kind)
        if suppressed is None:
            return
        if suppressed:
            message += f" ({suppressed} more like this suppressed)"
        self._logger.log(level, message, *args, exc_info=exc_info)

    def exception(self, kind: str, message: str, *args: object) -> None:
        self.log(logging.ERROR, kind, message, *args, exc_info=True)

    def debug(self, kind: str, message: str, *args: object) -> None:
        self.log(logging.DEBUG, kind, message, *args)

    def error(self, kind: str, message: str, *args: object) -> None:
        self.log(logging.ERROR, kind, message, *args)
