"""`select()`: the one pure function that decides every answer.

For a question (name, type) from a client, over one plan and one state snapshot,
it returns a `Decision`: rcode, the RRsets of each section, the ECS scope, and
(when asked) the trace that `gslb explain` prints. No I/O, no clock; the
randomness of weighted choices comes in as a `random.Random`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from gslb.plan import (
    TYPE_A,
    TYPE_AAAA,
    TYPE_ANY,
    TYPE_CNAME,
    TYPE_NS,
    EndpointPlan,
    Node,
    Plan,
    RRSet,
    ServicePlan,
    ServiceRegion,
    ZonePlan,
)
from gslb.select.client import Client
from gslb.select.steering import Ranked, enabled_endpoints, pick, rank, usable_endpoints
from gslb.state import State

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
MAX_CHAIN = 8  # CNAME hops followed inside our zones
TYPE_MX, TYPE_SRV = 15, 33
TYPE_DS = 43


@dataclass(frozen=True, slots=True)
class Step:
    step: str
    detail: str


@dataclass(frozen=True, slots=True)
class Steering:
    """What the steering of a service decided, for metrics and explain."""

    service: str
    region: str | None
    addresses: tuple[str, ...]
    fail_open: bool


@dataclass(frozen=True, slots=True)
class Decision:
    rcode: int
    authoritative: bool
    answer: tuple[RRSet, ...] = ()
    authority: tuple[RRSet, ...] = ()
    additional: tuple[RRSet, ...] = ()
    scope: int = 0  # the ECS scope prefix the answer depended on
    zone: str | None = None
    steering: Steering | None = None
    trace: tuple[Step, ...] = field(default=(), compare=False)


class _Trace:
    """Collects explain steps; a no-op unless explaining, to keep the query path lean."""

    __slots__ = ("enabled", "steps")

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.steps: list[Step] = []

    def __call__(self, step: str, detail: str) -> None:
        if self.enabled:
            self.steps.append(Step(step, detail))


def _target(rrset: RRSet) -> list[str]:
    """Names an RRset points at, for the additional section (NS, MX, SRV targets)."""
    out = []
    for rd in rrset.rdatas:
        label = getattr(rd, "label", None) or getattr(rd, "target", None) or getattr(rd, "mx", None)
        if label is not None:
            out.append(str(label).lower())
    return out


def _glue(zone: ZonePlan, rrsets: tuple[RRSet, ...]) -> tuple[RRSet, ...]:
    out: list[RRSet] = []
    for rrset in rrsets:
        if rrset.rtype not in (TYPE_NS, TYPE_MX, TYPE_SRV):
            continue
        for name in _target(rrset):
            node = zone.nodes.get(name)
            if node is None:
                continue
            for rtype in (TYPE_A, TYPE_AAAA):
                found = node.rrsets.get(rtype)
                if found is not None and found not in out:
                    out.append(found)
    return tuple(out)


def _cut_above(zone: ZonePlan, qname: str) -> str | None:
    if not zone.cuts:
        return None
    name = qname
    while name != zone.name and name.endswith("." + zone.name):
        if name in zone.cuts:
            return name
        name = name.split(".", 1)[1]
    return None


def _scope(service: ServicePlan, client: Client) -> int:
    if client.source_prefix is None:
        return 0
    depends = client.geo_prefix if service.policy == "geo" else 0
    if service.select == "hashed":
        depends = max(depends, client.hash_network()[1])
    return min(client.source_prefix, depends)


def steer(
    service: ServicePlan,
    qtype: int,
    client: Client,
    state: State,
    rng: random.Random,
    trace: _Trace,
) -> tuple[RRSet | None, Steering]:
    """Choose the region and the addresses for one service query."""
    if qtype == TYPE_ANY:
        family = 4 if service.has_v4 else 6
    else:
        family = 4 if qtype == TYPE_A else 6
    rtype = TYPE_A if family == 4 else TYPE_AAAA
    entries = [e for e in service.regions if e.family(family)]
    if not entries:
        trace("candidates", f"no region has IPv{family} endpoints: NODATA")
        return None, Steering(service.name, None, (), False)
    if trace.enabled:
        without = [e.region.name for e in service.regions if not e.family(family)]
        detail = ", ".join(e.region.name for e in entries)
        if without:
            detail += f" (without IPv{family} endpoints: {', '.join(without)})"
        trace("candidates", detail)
    ranked = rank(service, entries, client, rng)
    trace(
        "ranking",
        f"policy {service.policy}: "
        + "; ".join(f"{i + 1}. {r.entry.region.name} ({r.reason})" for i, r in enumerate(ranked)),
    )
    chosen, usable = _first_usable(ranked, family, state, trace)
    fail_open = chosen is None
    if chosen is None:
        chosen, usable = _fail_open(ranked, family, state, trace)
    picked = pick(service.select, usable, service.answers, client, rng)
    trace(
        "pick",
        f"select {service.select}, answers {service.answers}: "
        + ", ".join(e.address for e in picked),
    )
    rrset = RRSet(service.name, rtype, service.ttl, tuple(e.rdata for e in picked))
    steering = Steering(
        service.name, chosen.region.name, tuple(e.address for e in picked), fail_open
    )
    return rrset, steering


def _first_usable(
    ranked: list[Ranked], family: int, state: State, trace: _Trace
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
    ranked: list[Ranked], family: int, state: State, trace: _Trace
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


Sections = tuple[int, tuple[RRSet, ...], tuple[RRSet, ...], tuple[RRSet, ...]]


def _nodata(zone: ZonePlan, answer: list[RRSet], rcode: int = NOERROR) -> Sections:
    return rcode, tuple(answer), (zone.negative_soa,), ()


def select(
    plan: Plan,
    state: State,
    qname: str,
    qtype: int,
    client: Client,
    rng: random.Random,
    explain: bool = False,
) -> Decision:
    """Decide the answer to (qname, qtype); `qname` is absolute and lower case."""
    trace = _Trace(explain)
    zone = plan.find_zone(qname)
    if zone is None:
        trace("zone", f"{qname} is in none of our zones: REFUSED")
        return Decision(REFUSED, False, trace=tuple(trace.steps))
    trace("zone", zone.name)
    cut = _cut_above(zone, qname)
    if cut == qname and qtype == TYPE_DS:
        # DS lives on the parent side of a cut: answered here, not referred (RFC 4035
        # §3.1.4.1); we hold none, so NODATA with the SOA.
        trace("referral", f"DS at the delegation {cut} is the parent's: answered here")
        cut = None
    if cut is not None:
        ns = zone.nodes[cut].rrsets[TYPE_NS]
        trace("referral", f"{qname} is delegated at {cut}")
        return Decision(
            NOERROR,
            False,
            (),
            (ns,),
            _glue(zone, (ns,)),
            zone=zone.name,
            trace=tuple(trace.steps),
        )
    answer: list[RRSet] = []
    name = qname
    steering: Steering | None = None
    scope = 0
    for _ in range(MAX_CHAIN):
        node: Node | None = zone.nodes.get(name)
        if node is None:
            trace("name", f"{name} does not exist: NXDOMAIN")
            rcode, ans, auth, add = _nodata(zone, answer, NXDOMAIN)
            break
        if node.service is not None:
            service = node.service
            trace("service", f"{name}: policy {service.policy}, select {service.select}")
            if qtype not in (TYPE_A, TYPE_AAAA, TYPE_ANY):
                trace("type", "a service answers A and AAAA only: NODATA")
                rcode, ans, auth, add = _nodata(zone, answer)
                break
            rrset, steering = steer(service, qtype, client, state, rng, trace)
            # A family no region has is NODATA for everyone: nothing to scope.
            scope = 0 if rrset is None else _scope(service, client)
            trace(
                "scope",
                f"ECS scope /{scope}"
                if client.source_prefix is not None
                else "no ECS in the query",
            )
            if rrset is None or not rrset.rdatas:
                rcode, ans, auth, add = _nodata(zone, answer)
            else:
                answer.append(rrset)
                rcode, ans, auth, add = NOERROR, tuple(answer), (), ()
            break
        cname = node.rrsets.get(TYPE_CNAME)
        if cname is not None and qtype != TYPE_CNAME:
            answer.append(cname)
            target = str(cname.rdatas[0].label).lower()
            trace("cname", f"{name} is an alias of {target}")
            if plan.find_zone(target) is not zone or _cut_above(zone, target) is not None:
                rcode, ans, auth, add = NOERROR, tuple(answer), (), ()
                break
            name = target
            continue
        if qtype == TYPE_ANY and node.rrsets:
            # RFC 8482: answer ANY with one RRset, never the whole node.
            first = node.rrsets[min(node.rrsets)]
            trace("any", f"answering ANY minimally with one RRset (type {first.rtype})")
            answer.append(first)
            rcode, ans, auth, add = NOERROR, tuple(answer), (), ()
            break
        found = node.rrsets.get(qtype)
        if found is None:
            trace("type", f"{name} has no records of type {qtype}: NODATA")
            rcode, ans, auth, add = _nodata(zone, answer)
            break
        answer.append(found)
        trace("static", f"{name}: {len(found.rdatas)} record(s)")
        rcode, ans, auth, add = NOERROR, tuple(answer), (), _glue(zone, (found,))
        break
    else:
        trace("cname", f"CNAME chain longer than {MAX_CHAIN}: SERVFAIL")
        return Decision(SERVFAIL, True, tuple(answer), zone=zone.name, trace=tuple(trace.steps))
    return Decision(
        rcode,
        True,
        ans,
        auth,
        add,
        scope=scope,
        zone=zone.name,
        steering=steering,
        trace=tuple(trace.steps),
    )
