"""The live state of the proxy's backends: health, drain, passive marks, in-flight counts.

No I/O here. The server owns one `BackendTable` per loaded config; requests read it through
the balancers' read-only view and report outcomes back. `generation` moves whenever any
backend's availability may have changed, which is what lets a balancer cache its tables.
On reload a new table takes over the states of the backends that kept their name.

Panic mode (as Envoy's): when fewer than `panic_threshold` of the backends would be usable
(healthy, not drained, not passively out), passive marks are ignored and every healthy,
undrained backend takes requests again: passive marks come from request outcomes, which
clients influence, and answering 502 to everyone is worse than trying a suspect backend.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gslb.model import Backend
from gslb.proxy.passive import CLEAR, Passive, record


@dataclass(frozen=True, slots=True)
class BackendStatus:
    """One backend as `GET /status` shows it."""

    name: str
    url: str
    weight: int
    available: bool
    healthy: bool  # active check (True when none is configured)
    passive_out: bool
    drained: bool
    in_flight: int
    requests: int
    health_detail: str
    queued: int = 0  # requests waiting for a slot (the backend is at its max_connections)


class BackendState:
    """Mutable runtime state of one backend. Only the event loop thread touches it."""

    __slots__ = (
        "available",
        "backend",
        "detail",
        "drained",
        "healthy",
        "in_flight",
        "index",
        "passive",
        "passive_out",
        "requests",
        "waiting",
    )

    def __init__(self, backend: Backend, index: int) -> None:
        self.backend = backend
        self.index = index
        self.in_flight = 0
        self.requests = 0
        self.healthy = True
        self.detail = ""
        self.drained = False
        self.passive: Passive = CLEAR
        self.passive_out = False
        self.available = True
        # Requests waiting for a slot while in_flight is at the backend's max_connections,
        # oldest first (gslb.proxy.exchange's Exchange; Any keeps this module free of it).
        self.waiting: deque[Any] = deque()

    @property
    def full(self) -> bool:
        """At its max_connections: a new request has to wait."""
        cap = self.backend.max_connections
        return cap > 0 and self.in_flight >= cap

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def weight(self) -> int:
        return self.backend.weight

    def status(self) -> BackendStatus:
        b = self.backend
        return BackendStatus(
            b.name,
            b.url,
            b.weight,
            self.available,
            self.healthy,
            self.passive_out,
            self.drained,
            self.in_flight,
            self.requests,
            self.detail,
            len(self.waiting),
        )


HealthListener = Callable[[BackendState, bool], None]


class BackendTable:
    """The backends of one config, in configured order, plus the availability generation."""

    __slots__ = ("_backends", "_by_name", "_on_change", "generation", "panic", "panic_threshold")

    _by_name: dict[str, BackendState]
    generation: int

    def __init__(
        self,
        backends: Sequence[Backend],
        previous: BackendTable | None = None,
        on_change: HealthListener | None = None,
        panic_threshold: float = 0.0,
    ) -> None:
        old = previous._by_name if previous is not None else {}
        states: list[BackendState] = []
        for i, b in enumerate(backends):
            prior = old.get(b.name)
            if prior is not None and prior.backend.url == b.url:
                # Same backend: keep what is known about it; only the config part changes.
                prior.backend = b
                prior.index = i
                states.append(prior)
            else:
                states.append(BackendState(b, i))
        self._backends: tuple[BackendState, ...] = tuple(states)
        self._by_name = {s.name: s for s in states}
        self._on_change = on_change
        self.generation = (previous.generation + 1) if previous is not None else 0
        self.panic_threshold = panic_threshold
        self.panic = False  # passive marks are being ignored
        self._refresh()

    @property
    def backends(self) -> Sequence[BackendState]:
        return self._backends

    def get(self, name: str) -> BackendState | None:
        return self._by_name.get(name)

    def retired(self, previous: BackendTable) -> list[BackendState]:
        """States of `previous` that this table no longer uses."""
        mine = {id(s) for s in self._backends}
        return [s for s in previous._backends if id(s) not in mine]

    def any_available(self) -> bool:
        return any(s.available for s in self._backends)

    def _refresh(self) -> None:
        """Recompute every backend's availability (panic mode depends on all of them)."""
        states = self._backends
        usable = sum(1 for s in states if s.healthy and not s.drained and not s.passive_out)
        self.panic = usable < self.panic_threshold * len(states)
        for s in states:
            available = s.healthy and not s.drained and (self.panic or not s.passive_out)
            if available != s.available:
                s.available = available
                self.generation += 1

    def set_healthy(self, s: BackendState, healthy: bool, detail: str) -> None:
        """An active check's verdict (after rise/fall)."""
        s.detail = detail
        if s.healthy != healthy:
            s.healthy = healthy
            self._refresh()
            if self._on_change is not None:
                self._on_change(s, healthy and not s.passive_out)

    def set_drained(self, s: BackendState, drained: bool) -> None:
        if s.drained != drained:
            s.drained = drained
            self._refresh()

    def outcome(
        self,
        s: BackendState,
        ok: bool,
        now: float,
        threshold: int,
        cooldown: float,
        client: str | None = None,
    ) -> bool:
        """Record one request's outcome for passive checks; True when the backend just left."""
        before = s.passive
        after = record(before, ok, now, threshold, cooldown, client)
        if after is before:
            return False
        s.passive = after
        out = after.is_out(now)
        if out != s.passive_out:
            s.passive_out = out
            self._refresh()
            if self._on_change is not None:
                self._on_change(s, s.healthy and not out)
            return out
        return False

    def end_cooldown(self, s: BackendState, now: float) -> None:
        """Called when a passive cool-down may be over: the backend is tried again."""
        if s.passive_out and not s.passive.is_out(now):
            s.passive_out = False
            self._refresh()
            if self._on_change is not None:
                self._on_change(s, s.healthy)
