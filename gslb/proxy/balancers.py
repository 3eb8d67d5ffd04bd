"""The proxy's load-balancing methods: small pure classes, no I/O, no clock, no randomness.

A balancer is built once per backend set (at load and at reload) from the static backends,
and then answers one call per request, `choose(pool, client, cookie, exclude)`, reading the
live state through a read-only view: which backends can take a request now, how many requests
each has in flight. It returns the index of the chosen backend, or -1 when none can take it.

Tables are built when the set they depend on changes, never per request (after Envoy):
the smooth weighted schedule when the set of available backends changes (the view's
`generation` says when), the ip_hash ring when the configured backends change (a new balancer).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Sequence
from typing import Protocol

from gslb.model import ProxyMethod

NONE = -1


class BackendView(Protocol):
    """What a balancer may read about one backend."""

    @property
    def name(self) -> str: ...
    @property
    def weight(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def available(self) -> bool: ...


class PoolView(Protocol):
    """The backends in configured order; `generation` changes whenever `available` may have."""

    @property
    def backends(self) -> Sequence[BackendView]: ...
    @property
    def generation(self) -> int: ...


class Balancer(Protocol):
    def choose(self, pool: PoolView, client: str, cookie: str | None, exclude: int) -> int:
        """The index of the backend for this request, never `exclude`; -1 when none can."""
        ...


def stable_hash(data: bytes) -> int:
    """A 64-bit hash every node and every restart agree on."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class RoundRobin:
    """Each available backend in turn."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def choose(self, pool: PoolView, client: str, cookie: str | None, exclude: int) -> int:
        backends = pool.backends
        n = len(backends)
        start = self._next
        for step in range(n):
            i = (start + step) % n
            if i != exclude and backends[i].available:
                if exclude == NONE:  # a retry does not move the rotation
                    self._next = i + 1
                return i
        return NONE


def smooth_schedule(weights: Sequence[int]) -> tuple[int, ...]:
    """nginx's smooth weighted round robin unrolled over one period (indices of `weights`).

    Zero weights are left out; weights are divided by their gcd so the period stays short.
    Over a period each index appears exactly weight/gcd times, interleaved as evenly as nginx
    interleaves them (5,1,1 gives a a b a c a a, not a a a a a b c).
    """
    live = [w for w in weights if w > 0]
    if not live:
        return ()
    g = math.gcd(*live)
    effective = [w // g if w > 0 else 0 for w in weights]
    total = sum(effective)
    current = [0] * len(effective)
    schedule: list[int] = []
    for _ in range(total):
        best = -1
        for i, w in enumerate(effective):
            if w <= 0:
                continue
            current[i] += w
            if best < 0 or current[i] > current[best]:
                best = i
        current[best] -= total
        schedule.append(best)
    return tuple(schedule)


class SmoothWeighted:
    """Smooth weighted round robin; the schedule over the available backends is precomputed."""

    __slots__ = ("_generation", "_pos", "_schedule")

    def __init__(self) -> None:
        self._generation = -1
        self._schedule: tuple[int, ...] = ()
        self._pos = 0

    def choose(self, pool: PoolView, client: str, cookie: str | None, exclude: int) -> int:
        if pool.generation != self._generation:
            backends = pool.backends
            self._schedule = smooth_schedule([b.weight if b.available else 0 for b in backends])
            self._generation = pool.generation
            self._pos = 0
        schedule = self._schedule
        n = len(schedule)
        for _ in range(n):
            i = schedule[self._pos % n]
            self._pos = (self._pos + 1) % n
            if i != exclude:
                return i
        return NONE


class LeastConn:
    """The available backend with the fewest requests in flight per unit of weight.

    Ties are broken fairly: the scan starts just after the backend chosen last, so equally
    loaded backends take turns instead of the first one in the list taking every tie.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = -1

    def choose(self, pool: PoolView, client: str, cookie: str | None, exclude: int) -> int:
        backends = pool.backends
        n = len(backends)
        start = self._last + 1
        best = NONE
        best_load = 0
        best_weight = 1
        for step in range(n):
            i = (start + step) % n
            b = backends[i]
            if i == exclude or not b.available:
                continue
            load, weight = b.in_flight, max(1, b.weight)
            # load/weight < best_load/best_weight, without division
            if best == NONE or load * best_weight < best_load * weight:
                best, best_load, best_weight = i, load, weight
        if best != NONE and exclude == NONE:
            self._last = best
        return best


class IpHash:
    """Consistent hashing of the client address on a ring of virtual nodes.

    The ring covers every configured backend (weight sets its number of points) and is built
    once; a client whose point lands on an unavailable backend walks on to the next available
    one, so losing a backend moves only the clients that were on it.
    """

    __slots__ = ("_keys", "_owners")

    POINTS_PER_WEIGHT = 160

    def __init__(self, names: Sequence[str], weights: Sequence[int]) -> None:
        points: list[tuple[int, int]] = []
        for index, (name, weight) in enumerate(zip(names, weights, strict=True)):
            for v in range(max(1, weight) * self.POINTS_PER_WEIGHT):
                points.append((stable_hash(f"{name}#{v}".encode()), index))
        points.sort()
        self._keys = [k for k, _ in points]
        self._owners = [i for _, i in points]

    def choose(self, pool: PoolView, client: str, cookie: str | None, exclude: int) -> int:
        keys = self._keys
        if not keys:
            return NONE
        backends = pool.backends
        owners = self._owners
        n = len(keys)
        at = bisect.bisect_left(keys, stable_hash(client.encode())) % n
        first = owners[at]
        if first != exclude and backends[first].available:
            return first
        seen = {first}
        for step in range(1, n):
            i = owners[(at + step) % n]
            if i in seen:
                continue
            if i != exclude and backends[i].available:
                return i
            seen.add(i)
            if len(seen) >= len(backends):
                break
        return NONE


class Sticky:
    """A cookie names the backend; without one (or when it cannot take the request) `fallback`
    picks, and the front end then sets a new cookie naming the backend it got."""

    __slots__ = ("_by_name", "_fallback")

    def __init__(self, names: Sequence[str], fallback: Balancer) -> None:
        self._by_name = {name: i for i, name in enumerate(names)}
        self._fallback = fallback

    def choose(self, pool: PoolView, client: str, cookie: str | None, exclude: int) -> int:
        if cookie is not None:
            i = self._by_name.get(cookie, NONE)
            if i != NONE and i != exclude and pool.backends[i].available:
                return i
        return self._fallback.choose(pool, client, cookie, exclude)


def make_balancer(method: ProxyMethod, names: Sequence[str], weights: Sequence[int]) -> Balancer:
    """A fresh balancer for `method` over the configured backends (names and weights)."""
    if method == "round_robin":
        return RoundRobin()
    if method == "weighted":
        return SmoothWeighted()
    if method == "least_conn":
        return LeastConn()
    if method == "ip_hash":
        return IpHash(names, weights)
    return Sticky(names, SmoothWeighted())
