"""How a DNS server process runs its event loop: uvloop when installed, the GC off the caches.

`run(main)` is `asyncio.run(main)` with two differences that matter at 100k queries/s:

* uvloop's loop when the package is installed (it is a dependency on Linux), else asyncio's;
* every `FREEZE_EVERY` seconds, `gc.freeze()`: the answer, client, query and GeoIP caches
  hold hundreds of thousands of long-lived objects, and each full collection of the cyclic
  GC walks all of them (100 ms pauses with a warm cache, visible as p99.9 latency). Frozen
  objects are skipped by collections and still freed by reference counting when a cache
  drops them; the caches hold no reference cycles, so nothing they drop is left behind.
  Each freeze is preceded by a collection of the unfrozen objects, so cyclic garbage is
  never frozen (it would never be collected afterwards).
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

FREEZE_EVERY = 10.0  # seconds


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor when importable, else None (asyncio's default).

    GSLB_EVENT_LOOP=asyncio in the environment picks asyncio's loop (for comparisons).
    """
    if os.environ.get("GSLB_EVENT_LOOP", "").lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], *, freeze_every: float | None = FREEZE_EVERY) -> T:
    """Run `main` to completion like asyncio.run; see the module docstring."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(_with_freezer(main, freeze_every))


async def _with_freezer(main: Coroutine[Any, Any, T], every: float | None) -> T:
    freezer = asyncio.create_task(_freeze(every)) if every else None
    try:
        return await main
    finally:
        if freezer is not None:
            freezer.cancel()


async def _freeze(every: float) -> None:
    while True:
        await asyncio.sleep(every)
        # Collect first, so no cyclic garbage of the last period is frozen for good (the
        # health checks' failed probes make some); the collection walks only what is not
        # frozen yet, i.e. what the last period allocated, so it stays short.
        gc.collect()
        gc.freeze()
