"""What an admin change would do, before it is made: safety rules and the dry run.

Pure: a plan, the state before and the state after, and a sample of recent clients in;
verdicts and shares out (gslb/runtime.py applies them to mutations).

* Safety rule `min_serving_regions` (Route 53 ARC's idea): a change that would leave a
  service (per address family) with fewer usable regions than the rule asks, and fewer
  than it has now, is refused unless forced. A change that makes nothing worse is never
  refused, even while health already holds a service below the rule.
* Dry run: each sampled client is steered with the state before and with the state after
  (`select`, as its queries would be), per service and family, so the answer says where
  the clients of an affected region would go and the share of each region before and
  after.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gslb.config.names import plain
from gslb.errors import GslbError
from gslb.plan import Plan
from gslb.select import Client, select
from gslb.state import State

QTYPES = ((4, 1), (6, 28))  # (family, A/AAAA)


class SafetyRefused(GslbError):
    """An admin change that breaks a safety rule, not forced (the API answers 409)."""

    def __init__(self, broken: list[str]) -> None:
        self.broken = broken
        super().__init__("refused by the safety rule min_serving_regions: " + "; ".join(broken))


@dataclass(frozen=True, slots=True)
class Shortfall:
    service: str  # "www.gslb.example.com IPv4"
    before: int
    after: int

    def text(self, minimum: int) -> str:
        return (
            f"{self.service} would have {self.after} serving region(s) "
            f"(now {self.before}; the rule asks for {minimum})"
        )


def serving_regions(plan: Plan, state: State) -> dict[str, int]:
    """Usable regions per service and family: enabled, with a usable endpoint."""
    out = {}
    for name, service in sorted(plan.services.items()):
        for family, present in ((4, service.has_v4), (6, service.has_v6)):
            if not present:
                continue
            out[f"{plain(name)} IPv{family}"] = sum(
                1
                for entry in service.regions
                if state.region_usable(entry.region.name)
                and any(state.endpoint_usable(e.key) for e in entry.family(family))
            )
    return out


def shortfalls(plan: Plan, before: State, after: State, minimum: int) -> list[Shortfall]:
    """The services a change would take below `minimum` serving regions (or further)."""
    if minimum <= 0:
        return []
    now = serving_regions(plan, before)
    then = serving_regions(plan, after)
    return [
        Shortfall(service, now[service], count)
        for service, count in then.items()
        if count < minimum and count < now.get(service, 0)
    ]


def _regions_for(
    plan: Plan, state: State, name: str, qtype: int, clients: Sequence[Client], seed: int
) -> list[str | None]:
    rng = random.Random(seed)  # the same draws before and after: weighted policies compare
    out: list[str | None] = []
    for client in clients:
        steering = select(plan, state, name, qtype, client, rng).steering
        out.append(None if steering is None or steering.fail_open else steering.region)
    return out


def _shares(regions: Sequence[str | None]) -> dict[str, float]:
    counted = collections.Counter("(fail-open)" if r is None else r for r in regions)
    total = sum(counted.values())
    return {region: round(n / total, 4) for region, n in sorted(counted.items())}


def dry_run(
    plan: Plan, before: State, after: State, clients: Sequence[Client], seed: int = 0
) -> list[dict[str, Any]]:
    """Per service and family whose answers the change moves: the share of each region
    among `clients` before and after, and where the clients that move go."""
    out: list[dict[str, Any]] = []
    if not clients:
        return out
    for name, service in sorted(plan.services.items()):
        for family, qtype in QTYPES:
            if not (service.has_v4 if family == 4 else service.has_v6):
                continue
            was = _regions_for(plan, before, name, qtype, clients, seed)
            will = _regions_for(plan, after, name, qtype, clients, seed)
            moves = collections.Counter(
                f"{a or '(fail-open)'} -> {b or '(fail-open)'}"
                for a, b in zip(was, will, strict=True)
                if a != b
            )
            if not moves:
                continue
            out.append(
                {
                    "service": plain(name),
                    "family": f"IPv{family}",
                    "clients": len(clients),
                    "before": _shares(was),
                    "after": _shares(will),
                    "moved": dict(sorted(moves.items())),
                }
            )
    return out
