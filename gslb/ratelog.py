"""Rate-limited logging for the query path: one line per kind of event per interval.

Anyone on the internet can make the query path log (a malformed packet, a bug one odd
query trips), so a line per packet would let one client fill the disk and slow every
answer. `RateLog.warn(kind, ...)` writes the first event of a kind, then at most one line
per `interval` seconds, saying how many it held back. Kinds are a small fixed set chosen
by the code (never taken from the packet); the table is still bounded, in case a caller
ever builds kinds from data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

MAX_KINDS = 256


class RateLog:
    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        max_kinds: int = MAX_KINDS,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._max_kinds = max_kinds
        # kind -> [time of the last line written, events held back since]
        self._kinds: dict[str, list[float]] = {}

    def log(
        self, level: int, kind: str, message: str, *args: object, exc_info: bool = False
    ) -> bool:
        """Log `message % args` unless `kind` was logged less than `interval` ago.

        Returns whether a line was written. A written line after a quiet spell says how
        many events of the kind were held back.
        """
        now = self._clock()
        slot = self._kinds.get(kind)
        if slot is not None and now - slot[0] < self._interval:
            slot[1] += 1
            return False
        held = int(slot[1]) if slot is not None else 0
        if slot is None and len(self._kinds) >= self._max_kinds:
            self._kinds.clear()  # a burst of kinds: forget them rather than grow
        self._kinds[kind] = [now, 0]
        if held:
            message += " (and %d more like it in the last %.0f s)"
            args = (*args, held, self._interval)
        self._logger.log(level, message, *args, exc_info=exc_info)
        return True

    def warning(self, kind: str, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, kind, message, *args)

    def exception(self, kind: str, message: str, *args: object) -> bool:
        """An error with its traceback, as `Logger.exception` (call it in an except block)."""
        return self.log(logging.ERROR, kind, message, *args, exc_info=True)

    def __len__(self) -> int:
        return len(self._kinds)
