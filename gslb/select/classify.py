"""`classify()`: what an answer depends on, before any health or admin state is read.

Selection is two steps (gdnsd's lesson: bind a client network to its datacenter list
once, then only index). `classify(plan, question, client)` walks the zone and returns a
`DecisionKey`: either `Fixed`, the whole decision, which no state and no client changes
(static records, NXDOMAIN, NODATA, referrals, CNAMEs out of our zones), or `Steered`: the
service a name reaches and what the client's location gives it, that is the region ranking
(geo, failover), the hash network (hashed selection) and the ECS scope that follows.
`decide()` (gslb/select/decide.py) applies health and admin state to that, so a state
change is seen by the very next decision however long a key is kept.

Geo rankings are the expensive part of a decision, and they depend on the place the
database gives a client network, never on the client's own address, so a `RankingMemo`
keeps them per (service, address family, place): a network seen before, or any other
network the database places alike, costs a table read. It is bounded, and tied to one
plan (a new plan empties it). Pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from gslb.evicting import ClockCache
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
    ServiceRegion,
    ZonePlan,
)
from gslb.select.client import Client
from gslb.select.decision import (
    NOERROR,
    NXDOMAIN,
    QUIET,
    REFUSED,
    SERVFAIL,
    Decision,
    Steering,
    Trace,
)
from gslb.select.steering import Ranked, rank_failover, rank_geo
from gslb.select.zonewalk import TYPE_DS, cut_above, glue

MAX_CHAIN = 8  # CNAME hops followed inside our zones
RANKING_MEMO_ENTRIES = 100_000  # (service, family, place) rankings kept per plan


@dataclass(frozen=True, slots=True)
class Question:
    name: str  # absolute, lower case
    qtype: int


@dataclass(frozen=True, slots=True)
class Fixed:
    """A decision that neither the state nor the client changes."""

    decision: Decision


class Steered(NamedTuple):
    """A question that reaches a service, with what of the client its answer depends on.

    A NamedTuple, not a frozen dataclass: one is made per miss of the answer memo, and a
    tuple is made several times faster."""

    zone: ZonePlan
    chain: tuple[RRSet, ...]  # the CNAMEs followed to the service
    service: ServicePlan
    family: int  # of the addresses answered: 4 or 6
    entries: tuple[ServiceRegion, ...]  # the service's regions with endpoints of `family`
    ranking: tuple[Ranked, ...] | None  # None: drawn per decision (weighted policy)
    order: tuple[str, ...]  # the ranking's region names: what answers are keyed by; ()
    hash_key: bytes  # the client network hashed selection keys on; b"" for other pickers
    scope: int  # the ECS scope of the answer
    has_ecs: bool  # the query had ECS (for the trace: "no ECS" rather than a scope)

    @property
    def reads_client(self) -> bool:
        """Whether the answer depends on the client at all (its place or its network)."""
        return reads_place(self.service) or reads_network(self.service)

    @property
    def random(self) -> bool:
        """Whether `decide` draws the answer at random (same key, different answers)."""
        service = self.service
        return service.policy == "weighted" or service.select in ("weighted", "all")


DecisionKey = Fixed | Steered


class RankingMemo:
    """Region rankings by (service, family, place), and zone walks by question, for one
    plan at a time; bounded.

    Kept without their reasons (explain's text: a trace ranks afresh), as tuples of one
    shared `Ranked` per region, so an entry costs a tuple and its key.
    """

    __slots__ = ("_bare", "_plan", "_rankings", "_walks")

    def __init__(self, max_entries: int = RANKING_MEMO_ENTRIES) -> None:
        self._plan: Plan | None = None
        # Each ranking with its region names, the part of an answer's key it makes.
        self._rankings: ClockCache[
            tuple[object, ...], tuple[tuple[Ranked, ...], tuple[str, ...]]
        ] = ClockCache(max_entries=max_entries)
        self._bare: dict[int, Ranked] = {}  # by id() of a region entry of the plan
        # Zone walks by question: the same for every client, so a miss of the answer
        # memo for a question asked before is a table read, not a walk.
        self._walks: ClockCache[tuple[str, int], Fixed | Reached] = ClockCache(
            max_entries=max_entries
        )

    def __len__(self) -> int:
        return len(self._rankings)

    def ranking(
        self, plan: Plan, service: ServicePlan, entries: tuple[ServiceRegion, ...], client: Client
    ) -> tuple[tuple[Ranked, ...], tuple[str, ...]]:
        """The ranking of `entries` for `client`, and its region names in order."""
        if plan is not self._plan:
            self._reset(plan)
        key = (service.name, len(entries), *place(client))
        found = self._rankings.get(key)
        if found is None:
            bare = self._bare
            ranking = tuple(
                bare.get(id(r.entry)) or bare.setdefault(id(r.entry), Ranked(r.entry, ""))
                for r in rank_entries(service, entries, client)
            )
            found = (ranking, region_order(ranking))
            self._rankings.put(key, found)
        return found

    def walk(self, plan: Plan, question: Question) -> Fixed | Reached:
        """`walk(plan, question)`, made once per question and plan."""
        if plan is not self._plan:
            self._reset(plan)
        key = (question.name, question.qtype)
        found = self._walks.get(key)
        if found is None:
            found = walk(plan, question)
            self._walks.put(key, found)
        return found

    def _reset(self, plan: Plan) -> None:
        self._plan = plan  # holds the plan, so the ids in _bare stay its entries'
        self._rankings.clear()
        self._walks.clear()
        self._bare.clear()


def region_order(ranking: tuple[Ranked, ...]) -> tuple[str, ...]:
    return tuple(r.entry.region.name for r in ranking)


def place(client: Client) -> tuple[object, ...]:
    """All that a geo ranking reads of a client (gslb.select.steering.rank_geo)."""
    loc = client.location
    if loc is None:
        return (None, client.networks)
    return (loc.country, loc.subdivision, loc.continent, loc.lat, loc.lon, client.networks)


def rank_entries(
    service: ServicePlan, entries: tuple[ServiceRegion, ...], client: Client
) -> tuple[Ranked, ...]:
    """The ranking of a service that is not weighted (weighted rankings are drawn)."""
    if service.policy == "failover":
        return tuple(rank_failover(entries))
    return tuple(rank_geo(entries, client))


def reads_place(service: ServicePlan) -> bool:
    """Whether a service's answer depends on where the client is (its ranking)."""
    return service.policy == "geo"


def reads_network(service: ServicePlan) -> bool:
    """Whether a service's answer depends on the client's network (rendezvous hashing)."""
    return service.select == "hashed"


def scope_of(service: ServicePlan, client: Client) -> int:
    """The ECS scope of a service's answer: as many bits as the decision read."""
    if client.source_prefix is None:
        return 0
    depends = client.geo_prefix if reads_place(service) else 0
    if reads_network(service):
        depends = max(depends, client.hash_network()[1])
    return min(client.source_prefix, depends)


class Reached(NamedTuple):
    """Where a question's walk through its zone reaches a service."""

    zone: ZonePlan
    chain: tuple[RRSet, ...]  # the CNAMEs followed to the service
    service: ServicePlan


def classify(
    plan: Plan,
    question: Question,
    client: Client,
    memo: RankingMemo | None = None,
    trace: Trace = QUIET,
) -> DecisionKey:
    """What the answer to `question` depends on (see the module docstring)."""
    if memo is None or trace.enabled:
        walked = walk(plan, question, trace)
    else:
        walked = memo.walk(plan, question)
    if isinstance(walked, Fixed):
        return walked
    return _steered(plan, walked, question.qtype, client, memo, trace)


def walk(plan: Plan, question: Question, trace: Trace = QUIET) -> Fixed | Reached:
    """The zone walk of `question`: the whole decision, or the service it reaches (which
    no client changes: the same for every client, so memoized per question)."""
    qname, qtype = question.name, question.qtype
    zone = plan.find_zone(qname)
    if zone is None:
        trace("zone", f"{qname} is in none of our zones: REFUSED")
        return Fixed(Decision(REFUSED, False))
    trace("zone", zone.name)
    cut = cut_above(zone, qname)
    if cut == qname and qtype == TYPE_DS:
        # DS lives on the parent side of a cut: answered here, not referred (RFC 4035
        # §3.1.4.1); we hold none, so NODATA with the SOA.
        trace("referral", f"DS at the delegation {cut} is the parent's: answered here")
        cut = None
    if cut is not None:
        ns = zone.nodes[cut].rrsets[TYPE_NS]
        trace("referral", f"{qname} is delegated at {cut}")
        return Fixed(Decision(NOERROR, False, (), (ns,), glue(zone, (ns,)), zone=zone.name))
    answer: list[RRSet] = []
    name = qname
    for _ in range(MAX_CHAIN):
        node: Node | None = zone.nodes.get(name)
        if node is None:
            trace("name", f"{name} does not exist: NXDOMAIN")
            return _fixed(zone, answer, (zone.negative_soa,), (), NXDOMAIN)
        if node.service is not None:
            service = node.service
            if trace.enabled:  # a miss of the answer memo runs this: no text unless asked
                trace("service", f"{name}: policy {service.policy}, select {service.select}")
            if qtype not in (TYPE_A, TYPE_AAAA, TYPE_ANY):
                trace("type", "a service answers A and AAAA only: NODATA")
                return _fixed(zone, answer, (zone.negative_soa,))
            return Reached(zone, tuple(answer), service)
        cname = node.rrsets.get(TYPE_CNAME)
        if cname is not None and qtype != TYPE_CNAME:
            answer.append(cname)
            target = str(cname.rdatas[0].label).lower()
            trace("cname", f"{name} is an alias of {target}")
            if plan.find_zone(target) is not zone or cut_above(zone, target) is not None:
                return _fixed(zone, answer)
            name = target
            continue
        if qtype == TYPE_ANY and node.rrsets:
            # RFC 8482: answer ANY with one RRset, never the whole node.
            first = node.rrsets[min(node.rrsets)]
            trace("any", f"answering ANY minimally with one RRset (type {first.rtype})")
            answer.append(first)
            return _fixed(zone, answer)
        found = node.rrsets.get(qtype)
        if found is None:
            trace("type", f"{name} has no records of type {qtype}: NODATA")
            return _fixed(zone, answer, (zone.negative_soa,))
        answer.append(found)
        trace("static", f"{name}: {len(found.rdatas)} record(s)")
        return _fixed(zone, answer, (), glue(zone, (found,)))
    trace("cname", f"CNAME chain longer than {MAX_CHAIN}: SERVFAIL")
    return Fixed(Decision(SERVFAIL, True, tuple(answer), zone=zone.name))


def _fixed(
    zone: ZonePlan,
    answer: list[RRSet],
    authority: tuple[RRSet, ...] = (),
    additional: tuple[RRSet, ...] = (),
    rcode: int = NOERROR,
) -> Fixed:
    return Fixed(Decision(rcode, True, tuple(answer), authority, additional, zone=zone.name))


def _steered(
    plan: Plan,
    reached: Reached,
    qtype: int,
    client: Client,
    memo: RankingMemo | None,
    trace: Trace,
) -> DecisionKey:
    zone, chain, service = reached
    if qtype == TYPE_ANY:
        family = 4 if service.has_v4 else 6
    else:
        family = 4 if qtype == TYPE_A else 6
    entries = service.regions_with(family)
    if not entries:
        trace("candidates", f"no region has IPv{family} endpoints: NODATA")
        # A family no region has is NODATA for everyone: nothing to scope.
        trace_scope(trace, client.source_prefix is not None, 0)
        return Fixed(
            Decision(
                NOERROR,
                True,
                chain,
                (zone.negative_soa,),
                zone=zone.name,
                steering=Steering(service.name, None, (), False),
            )
        )
    if trace.enabled:
        without = [e.region.name for e in service.regions if not e.family(family)]
        detail = ", ".join(e.region.name for e in entries)
        if without:
            detail += f" (without IPv{family} endpoints: {', '.join(without)})"
        trace("candidates", detail)
    ranking: tuple[Ranked, ...] | None = None
    order: tuple[str, ...] = ()
    if service.policy != "weighted":
        if memo is None or trace.enabled:  # the memo keeps no reasons for the trace
            ranking = rank_entries(service, entries, client)
            order = region_order(ranking)
        else:
            ranking, order = memo.ranking(plan, service, entries, client)
        if trace.enabled:
            trace_ranking(trace, service, ranking)
    hash_key = client.hash_network()[0] if reads_network(service) else b""
    scope = scope_of(service, client)
    has_ecs = client.source_prefix is not None
    return Steered(zone, chain, service, family, entries, ranking, order, hash_key, scope, has_ecs)


def trace_ranking(trace: Trace, service: ServicePlan, ranking: tuple[Ranked, ...]) -> None:
    if not trace.enabled:
        return
    trace(
        "ranking",
        f"policy {service.policy}: "
        + "; ".join(f"{i + 1}. {r.entry.region.name} ({r.reason})" for i, r in enumerate(ranking)),
    )


def trace_scope(trace: Trace, client_has_ecs: bool, scope: int) -> None:
    trace("scope", f"ECS scope /{scope}" if client_has_ecs else "no ECS in the query")
