"""What every connection of one proxy server shares: the current config snapshot, the pool,
the counters, the drain flag. The snapshot is swapped whole on reload (snapshots, not locks):
a request reads it once when it starts and keeps that one to the end.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gslb.model import ProxySpec
from gslb.proxy.accesslog import AccessLog
from gslb.proxy.backends import BackendState, BackendTable
from gslb.proxy.balancers import Balancer
from gslb.proxy.request_ids import RequestIds
from gslb.proxy.routes import NO_ROUTES, BackendGroup, RouteTable
from gslb.proxy.stats import ProxyStats
from gslb.proxy.upstream import Pool


@dataclass(frozen=True, slots=True)
class Snapshot:
    spec: ProxySpec
    table: BackendTable
    balancer: Balancer
    sticky_cookie: bytes | None  # the cookie name when the method is sticky
    default_host: bytes = b"localhost"  # Host for requests that came without one (HTTP/1.0)
    routes: RouteTable = NO_ROUTES
    groups: tuple[BackendGroup, ...] = ()  # route i's is groups[i + 1]; groups[0]: all

    def group(self, host: bytes, target: bytes) -> BackendGroup:
        """The backend group a request goes to (see routes.py)."""
        return self.groups[self.routes.match(host, target)]


class Closable(Protocol):
    def check(self, now: float) -> None:
        """Enforce timeouts that are due at `now`."""
        ...

    def drain(self) -> None:
        """Finish the request in progress, if any, then close."""
        ...

    def abort(self) -> None: ...


class Shared:
    __slots__ = (
        "_all_closed",
        "_sweeper",
        "access_log",
        "connections",
        "drain_grace",
        "drain_spread",
        "draining",
        "loop",
        "on_closed",
        "pool",
        "request_ids",
        "snapshot",
        "stats",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, snapshot: Snapshot, stats: ProxyStats
    ) -> None:
        self.loop = loop
        self.snapshot = snapshot
        self.stats = stats
        self.pool = Pool(loop, stats)
        self.request_ids = RequestIds()
        self.draining = False
        self.drain_grace = 0.0  # set when the drain begins (see start_drain)
        self.drain_spread = 0.0
        self.connections: set[Closable] = set()
        self._all_closed: asyncio.Future[None] | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self.access_log: AccessLog | None = None  # set by the server when configured
        self.on_closed: Callable[[], None] | None = None  # the listener, to accept again

    # Timeouts are enforced by one sweep over the connections a few times per shortest
    # timeout, not by a timer per request: arming and cancelling a timer handle twice per
    # request costs more than the rest of the request's bookkeeping.
    def start_sweep(self) -> None:
        self.stop_sweep()
        self._sweeper = self.loop.call_later(self.tick(), self._sweep)

    def stop_sweep(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def tick(self) -> float:
        spec = self.snapshot.spec
        shortest = min(
            spec.client_timeout,
            spec.idle_timeout,
            spec.read_timeout,
            spec.total_timeout,
            spec.queue_timeout,
        )
        return min(0.5, max(0.01, shortest / 8))

    def _sweep(self) -> None:
        now = self.loop.time()
        for conn in list(self.connections):
            conn.check(now)
        self._sweeper = self.loop.call_later(self.tick(), self._sweep)

    def start_drain(self, timeout: float) -> None:
        """From now on answers say `Connection: close` and idle connections close after the
        grace. Grace and spread together take at most half of the drain timeout, so that the
        drain ends with every connection closed by the proxy, not cut."""
        spec = self.snapshot.spec
        grace, spread = spec.drain_grace, spec.drain_close_spread
        scale = min(1.0, timeout / 2 / (grace + spread)) if grace + spread > 0 else 1.0
        self.drain_grace, self.drain_spread = grace * scale, spread * scale
        self.draining = True

    def drain_close_delay(self) -> float:
        """How long a connection that is idle now may stay open while draining: the grace,
        plus a random share of the spread so that the clients do not all reconnect (to
        another proxy) at once (HAProxy's grace and close-spread-time)."""
        return self.drain_grace + random.random() * self.drain_spread

    def forget(self, conn: Closable) -> None:
        """A client connection closed."""
        self.connections.discard(conn)
        if self.on_closed is not None:
            self.on_closed()
        waiter = self._all_closed
        if not self.connections and waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_all_closed(self) -> None:
        """Returns once no client connection is left open."""
        if not self.connections:
            return
        if self._all_closed is None or self._all_closed.done():
            self._all_closed = self.loop.create_future()
        await asyncio.shield(self._all_closed)

    def report(
        self, snap: Snapshot, backend: BackendState, ok: bool, client: str | None = None
    ) -> None:
        """One request's outcome for passive checks; schedules the end of a cool-down.
        `client` names the client of a failure its request may have provoked (see passive.py);
        None for a failure no request can cause (connect refused or timed out)."""
        spec = snap.spec
        loop = self.loop
        table = snap.table
        now = loop.time()
        if table.outcome(backend, ok, now, spec.fail_threshold, spec.cooldown, client):
            self._check_cooldown(table, backend, spec.cooldown)

    def _check_cooldown(self, table: BackendTable, backend: BackendState, delay: float) -> None:
        def check() -> None:
            now = self.loop.time()
            remaining = backend.passive.out_until - now
            if backend.passive_out and remaining > 0:
                self._check_cooldown(table, backend, remaining)  # timers may fire a hair early
            else:
                table.end_cooldown(backend, now)

        self.loop.call_later(delay, check)
