"""Runs the health checks: probes every target on its interval and keeps each one's Health.

Public API (stable; used by `gslb serve` for region endpoints and by `gslb proxy` for backends):

    Target(key, spec, host, port=None)    frozen value: what to probe, under which key
    Scheduler(prober, on_change, *, on_result=None, max_concurrency=256,
              clock=time.monotonic, rng=None)
        set_targets(targets)      any time (a reload): keeps the Health of targets that are
                                  unchanged (same key, spec, host and port), starts new ones at
                                  INITIAL, stops removed ones and forgets them. A target whose
                                  spec/host/port changed starts over at INITIAL. Raises
                                  ValueError on a duplicate key (and then changes nothing).
        health() -> Mapping[str, Health]   read-only snapshot; a new object after each change,
                                  the same object while nothing changed (so it is cheap to poll)
        await start() / await stop()       start() probes the targets; stop() cancels every
                                  probe and waits for them; health() stays readable; restartable
        await wait_for(predicate, timeout) -> bool   True as soon as predicate(health()) holds,
                                  re-checked on every change (no polling); False on timeout

The Scheduler does not own the Prober: open it before start() and close it after stop().

Timing: the first probe of a target fires after a random offset in [0, min(interval, 1s)), so
a fresh server knows every state within about a second, without a thundering herd. Later probes
run at a fixed rate on a per-target random phase spread over the whole interval (so 5,000
targets on 10 s make an even 500 probes/s rather than a burst every 10 s); a probe that overruns
skips the slots it missed instead of firing back to back. At most `max_concurrency` probes are
in flight (a semaphore); give the Prober a connection `limit` at least as large.

Callbacks run on the event loop, synchronously, and must not block: `on_result(key, result)`
after every probe (for metrics: latency), then `on_change(key, health)` when the target's `up`
or `confirmed` flipped. A callback that raises is logged and does not stop the checks.
set_targets() and stop() call neither: whoever changes the targets knows it, and reads health().
`clock` stamps `Health.changed_at`; the sleeping itself uses the event loop's clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gslb.health.probes import Prober, ProbeResult
from gslb.health.tracker import INITIAL, Health, observe
from gslb.model import CheckSpec

log = logging.getLogger(__name__)

FIRST_PROBE_WITHIN = 1.0  # seconds: the first result of every target arrives about this soon
MIN_INTERVAL = 0.01  # seconds: a zero or negative interval must not become a busy loop

Predicate = Callable[[Mapping[str, Health]], bool]


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to probe. `key` names it in health() and in the callbacks."""

    key: str
    spec: CheckSpec
    host: str  # an address ("192.0.2.1", "2001:db8::1") or a host name
    port: int | None = None  # None: the spec's port or the kind's default
    ssl_context: ssl.SSLContext | None = None  # https: the trust to verify with; None: Prober's


def next_due(after: float, anchor: float, interval: float) -> float:
    """The first time of the series anchor + k*interval (k an integer) strictly after `after`."""
    return anchor + (math.floor((after - anchor) / interval) + 1) * interval


class Scheduler:
    """Probes each target on its interval; applies rise/fall; reports changes."""

    def __init__(
        self,
        prober: Prober,
        on_change: Callable[[str, Health], None],
        *,
        on_result: Callable[[str, ProbeResult], None] | None = None,
        max_concurrency: int = 256,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._prober = prober
        self._on_change = on_change
        self._on_result = on_result
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._semaphore = asyncio.Semaphore(max(1, max_concurrency))
        self._targets: dict[str, Target] = {}
        self._health: dict[str, Health] = {}
        self._snapshot: Mapping[str, Health] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}  # key -> the task probing it
        self._stopping: set[asyncio.Task[None]] = set()  # cancelled, not yet finished
        self._waiters: list[tuple[Predicate, asyncio.Future[bool]]] = []
        self._running = False

    # --- targets and state -----------------------------------------------------------------

    def set_targets(self, targets: Iterable[Target]) -> None:
        wanted: dict[str, Target] = {}
        for target in targets:
            if target.key in wanted:
                raise ValueError(f"duplicate health-check target key {target.key!r}")
            wanted[target.key] = target
        for key, old in list(self._targets.items()):
            if wanted.get(key) != old:
                self._forget(key)
        kept = self._targets
        self._targets = {key: kept.get(key, target) for key, target in wanted.items()}
        self._health = {key: self._health.get(key, INITIAL) for key in wanted}
        if self._running:
            for key, target in self._targets.items():
                if key not in self._tasks:
                    self._spawn(target)
        self._changed()

    def health(self) -> Mapping[str, Health]:
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = self._snapshot = MappingProxyType(dict(self._health))
        return snapshot

    async def wait_for(self, predicate: Predicate, timeout: float) -> bool:
        if predicate(self.health()):
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            return False
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    # --- running ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        for target in self._targets.values():
            self._spawn(target)

    async def stop(self) -> None:
        self._running = False
        for key in list(self._tasks):
            self._cancel(key)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    def _spawn(self, target: Target) -> None:
        task = asyncio.get_running_loop().create_task(
            self._probe_forever(target), name=f"health-check {target.key}"
        )
        self._tasks[target.key] = task

    def _cancel(self, key: str) -> None:
        task = self._tasks.pop(key, None)
        if task is not None and not task.done():
            task.cancel()
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    def _forget(self, key: str) -> None:
        self._cancel(key)
        self._targets.pop(key, None)
        self._health.pop(key, None)

    async def _probe_forever(self, target: Target) -> None:
        loop = asyncio.get_running_loop()
        spec, host, port, context = target.spec, target.host, target.port, target.ssl_context
        interval = max(spec.interval, MIN_INTERVAL)
        start = loop.time()
        anchor = start + self._rng.random() * interval  # this target's phase in steady state
        due = start + self._rng.random() * min(interval, FIRST_PROBE_WITHIN)
        # After the first probe, at least half an interval passes before the next one.
        after_first = due + interval / 2
        while True:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            async with self._semaphore:
                try:
                    result = await self._prober.probe(spec, host, port, context)
                except Exception as exc:  # a Prober that breaks its promise: count a failure
                    log.exception("health probe of %s raised", target.key)
                    result = ProbeResult(False, f"probe error: {type(exc).__name__}", 0.0)
            self._record(target, result)
            due = next_due(max(loop.time(), after_first, due + interval / 2), anchor, interval)

    def _record(self, target: Target, result: ProbeResult) -> None:
        key = target.key
        if self._targets.get(key) is not target:  # replaced or removed while probing
            return
        if self._on_result is not None:
            try:
                self._on_result(key, result)
            except Exception:
                log.exception("health on_result callback failed for %s", key)
        old = self._health[key]
        spec = target.spec
        new = observe(old, result.ok, result.detail, self._clock(), spec.rise, spec.fall)
        if new is old:
            return
        self._health[key] = new
        self._changed()
        if new.up != old.up or new.confirmed != old.confirmed:
            try:
                self._on_change(key, new)
            except Exception:
                log.exception("health on_change callback failed for %s", key)

    def _changed(self) -> None:
        self._snapshot = None
        if not self._waiters:
            return
        snapshot = self.health()
        for predicate, future in self._waiters:
            if future.done():
                continue
            try:
                if predicate(snapshot):
                    future.set_result(True)
            except Exception as exc:
                future.set_exception(exc)
