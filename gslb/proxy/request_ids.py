"""New request ids (X-Request-Id): 32 random hex digits each, drawn from the kernel's CSPRNG
in batches.

`os.urandom` per request is a getrandom system call per request; a `RequestIds` asks for
BATCH ids' worth at once and hands out slices of its hex text, so the ids are as random as
before at one call per BATCH requests. One per proxy server (gslb.proxy.shared), used from
its event loop only.
"""

from __future__ import annotations

import os

BATCH = 256  # ids per getrandom call
_ID_BYTES = 16  # random bytes in an id: 32 hex digits


class RequestIds:
    __slots__ = ("_batch", "_hex", "_next")

    def __init__(self, batch: int = BATCH) -> None:
        self._batch = batch
        self._hex = b""
        self._next = 0

    def new(self) -> bytes:
        """An id no earlier call returned (with the odds of 128 random bits)."""
        start = self._next
        if start >= len(self._hex):
            self._hex = os.urandom(_ID_BYTES * self._batch).hex().encode()
            start = 0
        end = start + 2 * _ID_BYTES
        self._next = end
        return self._hex[start:end]
