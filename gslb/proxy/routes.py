"""Routes: which backend group a request goes to, by Host and path prefix. Pure, no I/O.

`RouteTable` is compiled once per config (at load and at reload) from `proxy.routes`; its
`match(host, target)` answers one call per request with a group index: route i (in configured
order, first match wins) is group i + 1; 0 is the default group, all backends, for requests
no route matches. Hosts compare case-insensitively with the port (and a trailing dot) left
out; `*.example.com` matches any name under example.com but not example.com itself. Paths
compare as byte prefixes of the request path (without the query): `/v2/` matches `/v2/x`,
`/v2` would also match `/v2x`.

`BackendGroup` is one group's view of the backend table (the balancers' `PoolView`): its
backends in configured order, sharing their live state (health, drain, passive marks,
in-flight counts) with every other group that names them, and its own balancer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gslb.model import ProxyRoute
from gslb.proxy.backends import BackendState, BackendTable
from gslb.proxy.balancers import NONE, Balancer

DEFAULT = 0


def normal_host(host: bytes) -> bytes:
    """A Host value as routes compare it: lower case, no port, no trailing dot."""
    host = host.strip().lower()
    if host.startswith(b"["):  # an IPv6 literal: [::1]:8080
        end = host.find(b"]")
        return host[: end + 1] if end >= 0 else host
    colon = host.rfind(b":")
    if colon >= 0:
        host = host[:colon]
    return host.rstrip(b".")


def split_target(target: bytes) -> tuple[bytes | None, bytes]:
    """(authority or None, path without query) of a request target; an absolute-form
    target (`http://host/path`) names its host, which then wins over the Host header."""
    authority: bytes | None = None
    lowered = target[:8].lower()
    if lowered.startswith(b"http://") or lowered.startswith(b"https://"):
        rest = target[target.index(b"//") + 2 :]
        slash = rest.find(b"/")
        authority, target = (rest, b"/") if slash < 0 else (rest[:slash], rest[slash:])
    query = target.find(b"?")
    return authority, target if query < 0 else target[:query]


@dataclass(frozen=True, slots=True)
class _Compiled:
    exact: bytes | None  # a host compared whole
    suffix: bytes | None  # `.example.com` for `*.example.com`
    path: bytes


def _compile(route: ProxyRoute) -> _Compiled:
    host = route.host
    exact = suffix = None
    if host is not None:
        h = normal_host(host.encode("idna") if not host.isascii() else host.encode())
        if h.startswith(b"*."):
            suffix = h[1:]
        else:
            exact = h
    return _Compiled(exact, suffix, route.path.encode())


_HOST_CACHE_SIZE = 1024  # Host values remembered per table (emptied when full)
_Candidates = tuple[tuple[int, bytes], ...]  # (group, path prefix) of routes a host matches


class RouteTable:
    """The compiled `proxy.routes`, matched in order.

    Which routes a Host value matches depends on that value alone, and a proxy sees few of
    them: for origin-form targets (nearly every request) the routes whose host matches are
    looked up by the raw Host value, so a request costs one dict probe and the path prefixes
    of those routes only, not a normalised host compared with every route."""

    __slots__ = ("_by_host", "_routes", "_rows")

    def __init__(self, routes: Sequence[ProxyRoute]) -> None:
        self._routes = tuple(_compile(r) for r in routes)
        # The same as plain tuples with the group number: unpacked in the loop, they cost
        # less than attribute reads.
        self._rows = tuple((i + 1, r.exact, r.suffix, r.path) for i, r in enumerate(self._routes))
        self._by_host: dict[bytes, _Candidates] = {}

    def __len__(self) -> int:
        return len(self._routes)

    def _candidates(self, h: bytes) -> _Candidates:
        """(group, prefix) of the routes whose host matches `h` (normalised), in order."""
        return tuple(
            (group, prefix)
            for group, exact, suffix, prefix in self._rows
            if (exact is None or h == exact)
            and (suffix is None or (h.endswith(suffix) and len(h) > len(suffix)))
        )

    def match(self, host: bytes, target: bytes) -> int:
        """The group of a request: 1 + the index of the first route it matches, else 0."""
        if not self._rows:
            return DEFAULT
        path: bytes | None = None  # without the query: found only once a host matched
        if target[:1] == b"/":  # origin form, nearly every request: no authority to split
            candidates = self._by_host.get(host)
            if candidates is None:
                by_host = self._by_host
                if len(by_host) >= _HOST_CACHE_SIZE:
                    by_host.clear()
                candidates = by_host[host] = self._candidates(normal_host(host))
            if not candidates:
                return DEFAULT
        else:
            authority, path = split_target(target)
            candidates = self._candidates(normal_host(authority if authority is not None else host))
        for group, prefix in candidates:
            if path is None:
                query = target.find(b"?")
                path = target if query < 0 else target[:query]
            if path.startswith(prefix):
                return group
        return DEFAULT


class BackendGroup:
    """Some backends of a table, as a balancer sees them, and the group's balancer."""

    __slots__ = ("_local", "_states", "_table", "balancer", "key")

    def __init__(
        self,
        table: BackendTable,
        names: Sequence[str],
        balancer: Balancer,
        key: object = None,
    ) -> None:
        states = [table.get(n) for n in names]
        self._states: tuple[BackendState, ...] = tuple(s for s in states if s is not None)
        self._local = {id(s): i for i, s in enumerate(self._states)}
        self._table = table
        self.balancer = balancer
        self.key = key  # what the balancer was built for: kept across reloads when equal

    @property
    def backends(self) -> Sequence[BackendState]:
        return self._states

    @property
    def generation(self) -> int:
        return self._table.generation

    def local(self, state: BackendState) -> int:
        """The index of `state` in this group (-1 when it is not in it)."""
        return self._local.get(id(state), NONE)

    def choose(self, client: str, cookie: str | None, exclude: int) -> BackendState | None:
        i = self.balancer.choose(self, client, cookie, exclude)
        return None if i < 0 else self._states[i]


NO_ROUTES = RouteTable(())
