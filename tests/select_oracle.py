"""The selection as it was before it split into classify() and decide(): one walk that
ranks and applies the state in one go. Kept, frozen, as the oracle the split is checked
against (tests/test_select_split.py); the helpers that moved unchanged are imported."""

from __future__ import annotations

import random

from gslb.plan import (
    TYPE_A,
    TYPE_AAAA,
    TYPE_ANY,
    TYPE_CNAME,
    TYPE_NS,
    Node,
    Plan,
    RRSet,
    ServicePlan,
    ZonePlan,
)
from gslb.select.client import Client
from gslb.select.decide import _fail_open, _first_usable
from gslb.select.decision import NOERROR, NXDOMAIN, REFUSED, SERVFAIL, Decision, Steering
from gslb.select.decision import Trace as _Trace
from gslb.select.steering import pick, rank
from gslb.select.zonewalk import TYPE_DS
from gslb.select.zonewalk import cut_above as _cut_above
from gslb.select.zonewalk import glue as _glue
from gslb.state import State

MAX_CHAIN = 8


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
    chosen, usable = _first_usable(tuple(ranked), family, state, trace)
    fail_open = chosen is None
    if chosen is None:
        chosen, usable = _fail_open(tuple(ranked), family, state, trace)
    picked = pick(service.select, usable, service.answers, client.hash_network()[0], rng)
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
