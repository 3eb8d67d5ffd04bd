"""`decide()`: a `DecisionKey` (gslb/select/classify.py) plus the state, to a `Decision`.

Health and admin state are applied here, after the ranking (however long that was kept),
so a change is seen by the very next decision: the first ranked region an operator left
enabled with a usable endpoint answers, or when nothing is usable, the service fails open.
Weighted rankings and weighted or rotating picks draw from the `random.Random` passed in.
"""

from __future__ import annotations

import random

from gslb.plan import TYPE_A, TYPE_AAAA, EndpointPlan, Plan, RRSet, ServiceRegion
from gslb.select.classify import DecisionKey, Fixed, trace_ranking, trace_scope
from gslb.select.decision import NOERROR, QUIET, Decision, Steering, Trace
from gslb.select.steering import Ranked, enabled_endpoints, pick, rank_weighted, usable_endpoints
from gslb.state import State


def decide(
    plan: Plan, state: State, key: DecisionKey, rng: random.Random, trace: Trace = QUIET
) -> Decision:
    """The decision for `key` under `state`; `plan` is the one `key` was classified on."""
    if isinstance(key, Fixed):
        return key.decision
    service = key.service
    family = key.family
    ranked = key.ranking
    if ranked is None:
        ranked = tuple(rank_weighted(key.entries, rng))
        trace_ranking(trace, service, ranked)
    chosen, usable = _first_usable(ranked, family, state, trace)
    fail_open = chosen is None
    if chosen is None:
        chosen, usable = _fail_open(ranked, family, state, trace)
    picked = pick(service.select, usable, service.answers, key.hash_key, rng)
    trace(
        "pick",
        f"select {service.select}, answers {service.answers}: "
        + ", ".join(e.address for e in picked),
    )
    rtype = TYPE_A if family == 4 else TYPE_AAAA
    rrset = RRSet(service.name, rtype, service.ttl, tuple(e.rdata for e in picked))
    steering = Steering(
        service.name, chosen.region.name, tuple(e.address for e in picked), fail_open
    )
    trace_scope(trace, key.has_ecs, key.scope)
    zone = key.zone
    if not rrset.rdatas:
        return Decision(
            NOERROR,
            True,
            key.chain,
            (zone.negative_soa,),
            scope=key.scope,
            zone=zone.name,
            steering=steering,
        )
    return Decision(
        NOERROR, True, (*key.chain, rrset), scope=key.scope, zone=zone.name, steering=steering
    )


def _first_usable(
    ranked: tuple[Ranked, ...], family: int, state: State, trace: Trace
) -> tuple[ServiceRegion | None, tuple[EndpointPlan, ...]]:
    """The best-ranked region with a usable endpoint, and those endpoints.

    When explaining, every region is judged, so the trace says why each was kept or dropped.
    """
    chosen: ServiceRegion | None = None
    usable: tuple[EndpointPlan, ...] = ()
    for r in ranked:
        name = r.entry.region.name
        admin = state.admin.region(name)
        if admin != "enabled":
            trace("drop", f"{name}: {admin} by an operator")
            continue
        endpoints = usable_endpoints(r.entry, family, state)
        if not endpoints:
            if trace.enabled:
                trace(
                    "drop", f"{name}: no usable IPv{family} endpoint ({_why_not(r, family, state)})"
                )
            continue
        if chosen is None:
            chosen, usable = r.entry, endpoints
            if not trace.enabled:
                break
            skipped = len(r.entry.family(family)) - len(endpoints)
            extra = f"; skipping {_why_not(r, family, state)}" if skipped else ""
            trace("region", f"{name}: chosen, {len(endpoints)} usable endpoint(s){extra}")
        else:
            trace("keep", f"{name}: usable, {len(endpoints)} endpoint(s), ranked lower")
    return chosen, usable


def _why_not(r: Ranked, family: int, state: State) -> str:
    down = [e.address for e in r.entry.family(family) if e.key in state.down]
    off = [e.address for e in r.entry.family(family) if e.key in state.admin.off_endpoints]
    parts = ([f"down: {', '.join(down)}"] if down else []) + (
        [f"disabled: {', '.join(off)}"] if off else []
    )
    return "; ".join(parts)


def _fail_open(
    ranked: tuple[Ranked, ...], family: int, state: State, trace: Trace
) -> tuple[ServiceRegion, tuple[EndpointPlan, ...]]:
    """Nothing usable: answer as if everything were healthy.

    Measured health is ignored first, operator overrides last: a region or endpoint an
    operator took out is only answered with when the operator took out everything.
    """
    for r in ranked:
        if state.admin.region(r.entry.region.name) != "enabled":
            continue
        endpoints = enabled_endpoints(r.entry, family, state)
        if endpoints:
            trace(
                "fail-open",
                f"nothing healthy anywhere: answering from {r.entry.region.name} "
                "as if its endpoints were healthy",
            )
            return r.entry, endpoints
    entry = ranked[0].entry
    trace(
        "fail-open",
        f"everything is disabled by an operator: answering from {entry.region.name} "
        "as if everything were enabled and healthy",
    )
    return entry, entry.family(family)
