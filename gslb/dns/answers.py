"""The answer cache of the fast path: encoded replies, minus what each query brings.

A cached reply is stored as a `Variant`: the reply's flags (without RD and CD), its section
counts, and its body, that is everything after the question up to the OPT record's RDLENGTH.
A hit puts back together: the query's ID, flags | the query's RD and CD, the counts, the
question as the query spelled it, the body, and the OPT record's RDLENGTH and ECS option
(the query's own ECS data with the scope filled in). The full path writes the question
without entering it into the compression table (codec.encode_reply), so the body is the
same for every spelling of a name.

Keys: what an answer depends on, and nothing more (so clients who would get different
answers never share an entry, and clients who would not, do):

* the question name in lower case and QTYPE (class is always IN here);
* EDNS: none, present, or present with DO, since the OPT record in the reply differs;
* for a name that reaches a service (a `Route` learnt from the first full-path answer,
  CNAME chains included), what the service's decision reads from the client:
  - `geo` policy: the service's regions in the order the client's location ranks them
    (gslb.select.steering.rank_geo), which is all the decision reads of the location:
    every client network that ranks the regions alike shares answers, however many
    locations they have (tens of thousands of cities rank three regions in a handful of
    orders). The ranking is computed once per (service, location as the database gives
    it: country, continent, lat, lon). The ECS scope the reply carries is the database
    network's prefix, which differs between such networks; it is not in the body but
    spliced in per query;
  - `hashed` selection: the client's hash network (its /24 or /56, or the ECS source
    prefix when shorter), which is what rendezvous hashing keys on;
  - nothing else: `failover` and `weighted` policies and `first`, `all` and `weighted`
    selection never look at the client.
* the plan and the state: not in the key, since the cache drops what they invalidate when
  either changes (compared by identity, so a new snapshot is seen by the very next query).
  Static answers depend on the plan only and survive health and admin changes.

The client is the ECS subnet when the query has one with a non-zero source prefix, else the
resolver's address (as in the full path), and a `ClientInfo` is kept per ECS option (its
bytes) or per resolver address: its key parts by route kind, and the ECS option the reply
echoes (the source prefix bounds the scope, so the echo is made per option, not stored in
the body). The address family needs no key part of its own: ranking does not read it, the
hash network's bytes carry it, and QTYPE decides the answer's family.

Nothing else reaches an answer: UDP payload size only decides truncation, which is checked
on every hit (a reply that would not fit takes the full path), and truncated replies are
never cached.

Most queries repeat the bytes of an earlier one (same question, same subnet), so the parsed
query is memoized by its bytes after the ID (`Known`) and, for answers that do not depend
on the resolver's address, linked to its entry and its replies minus the ID until the
next plan or state change (`epoch`): a repeated query costs one dictionary lookup and one
concatenation.

Random answers (`weighted` policy, `all` and `weighted` selection) keep up to
`variants` replies per key (128), each one a full-path answer drawn with the responder's
RNG, served in turn. A key's first hits are all answered by the full path until it holds
`variants` draws; after that every `refresh_every`-th hit (1000) is, and its fresh draw
replaces the oldest. Each stored draw is served as often as any other whatever it contains,
so across queries the answers follow the weights exactly in expectation, and any run of
128 or more queries of one key shows the shares of 128 independent draws (for a 3:1 weight,
75% give or take 4%). Keys are few (a steered name's key holds the region ranking, not the
client), so filling them costs little: 128 full-path answers (~100 µs each) per random
key after each plan or state change, then one per 1000 hits.

Memory is bounded: at most `max_answers` variants, routes and parsed queries and
`max_clients` client entries and rankings, and `max_bytes` (`dns.cache_memory`) for all the
tables together, each entry costed by its bytes plus a measured overhead
(gslb/dns/cache_costs.py). A full table evicts one entry at a time, the least recently
asked for first (CLOCK, gslb/evicting.py), so a burst of new keys does not throw away the
hot set. A query linked to an evicted answer keeps serving it (it is still the answer
for the plan and state it was made for) until the next plan or state change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gslb.dns import cache_costs as costs
from gslb.dns.cache_costs import DEFAULT_CACHE_MEMORY
from gslb.dns.codec import qtype_label
from gslb.dns.ecs import ClientSubnet
from gslb.dns.fastparse import Parsed
from gslb.evicting import ClockCache
from gslb.plan import Plan
from gslb.select import Client, Decision, Steering
from gslb.select.steering import rank_geo
from gslb.state import State

FLAG_TC = 0x0200
RD_CD = 0x0110
OPT_TAIL = 11  # root name, type, class, TTL, RDLENGTH of an OPT record


# Route kinds: what of the client an answer depends on. They index ClientInfo's tables.
NONE, GEO, HASHED, GEO_HASHED = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Route:
    """What the answers for one (name, type) depend on, learnt from a decision."""

    steered: bool  # reaches a service: depends on the state as well as the plan
    kind: int  # NONE, GEO, HASHED or GEO_HASHED
    random: bool  # drawn at random: keep variants
    service: str = ""  # the service reached, when steered
    shared: object = None  # the answer's key when not the question's (gslb/dns/negative.py)


STATIC_ROUTE = Route(False, NONE, False)


def route_of(decision: Decision, plan: Plan) -> Route:
    steering = decision.steering
    if steering is None:
        return STATIC_ROUTE
    service = plan.services.get(steering.service)
    if service is None:  # cannot happen with a plan from compile_plan; be safe anyway
        return Route(True, HASHED, True, steering.service)
    kind = (GEO if service.policy == "geo" else NONE) | (
        HASHED if service.select == "hashed" else NONE
    )
    random = service.policy == "weighted" or service.select in ("weighted", "all")
    return Route(True, kind, random, steering.service)


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """What a cached answer may depend on about one client (an ECS subnet or a peer),
    and the reply's ECS option for it, each indexed by route kind."""

    parts: tuple[object, object, object, object]  # the client's part of an answer key
    tails: tuple[bytes, bytes, bytes, bytes]  # OPT RDLENGTH + ECS option; b"" without ECS
    client: Client  # what the full path decides on (geo keys rank regions with it)


def scope(client: Client, kind: int) -> int:
    """The ECS scope the full path answers with (select.classify.scope_of)."""
    if client.source_prefix is None:
        return 0
    depends = client.geo_prefix if kind & GEO else 0
    if kind & HASHED:
        depends = max(depends, client.hash_network()[1])
    return min(client.source_prefix, depends)


def client_info(client: Client, ecs: bytes | None) -> ClientInfo:
    """`ecs`: the option data as the query sent it (validated: it made `client`)."""
    loc = client.location
    geo_key = (
        ""
        if loc is None
        else f"{loc.country}|{loc.subdivision}|{loc.continent}|{loc.lat}|{loc.lon}"
    )
    if client.networks:  # operator networks come first in the ranking: part of the key
        geo_key += "|" + ",".join(client.networks)
    hash_key = client.hash_network()[0]
    parts = (None, geo_key, hash_key, (geo_key, hash_key))
    if ecs is None:
        return ClientInfo(parts, (b"", b"", b"", b""), client)
    size = len(ecs).to_bytes(2, "big")
    option_length = (len(ecs) + 4).to_bytes(2, "big")
    tails = tuple(
        option_length + b"\x00\x08" + size + ecs[:3] + bytes((scope(client, kind),)) + ecs[4:]
        for kind in (NONE, GEO, HASHED, GEO_HASHED)
    )
    return ClientInfo(parts, (tails[0], tails[1], tails[2], tails[3]), client)


class Tally:
    """How often cached replies with these metric labels were served since the metrics
    last counted them.

    A hit only bumps `n` (and hands the tally to the observer on its first hit since the
    last count); the observer adds `n` to its counters under these keys when it is read,
    which keeps per-query metrics to a few attribute operations. The keys are made once,
    with the reply, and the cache gives all its replies with the same labels one tally
    (`AnswerCache.store`), so counting costs per label set, not per reply.
    """

    __slots__ = ("answer", "endpoints", "fail_open", "labels", "n", "query")

    def __init__(self, zone: str | None, qtype: int, rcode: int, steering: Steering | None) -> None:
        self.n = 0
        self.query = (zone, qtype_label(qtype), rcode)  # gslb_dns_queries_total: bounded
        self.answer: tuple[str, str] | None = None  # (service, region) when steered
        self.endpoints: tuple[tuple[str, str, str], ...] = ()  # (service, region, address)
        self.fail_open: str | None = None  # the service, when it answered failing open
        if steering is not None and steering.region is not None:
            self.answer = (steering.service, steering.region)
            self.endpoints = tuple(
                (steering.service, steering.region, address) for address in steering.addresses
            )
            if steering.fail_open:
                self.fail_open = steering.service
        self.labels = (self.query, self.answer, self.endpoints, self.fail_open)


@dataclass(frozen=True, slots=True, eq=False)
class Variant:
    """One cached reply, as described in the module docstring."""

    # Flags and counts, by the query's RD and CD bits as (wire[2] & 1) | ((wire[3] >> 3) & 2)
    # (RD is 0x0100, CD 0x0010).
    heads: tuple[bytes, bytes, bytes, bytes]
    body: bytes
    length: int  # of the reply without question and ECS option
    tally: Tally


def head_index(wire: bytes) -> int:
    """Which of `Variant.heads` a query's RD and CD bits select."""
    return (wire[2] & 1) | ((wire[3] >> 3) & 2)


def variant_of(
    reply: bytes, qend: int, edns: bool, ecs: ClientSubnet | None, decision: Decision, qtype: int
) -> Variant | None:
    """The cacheable part of a full-path reply; None when it must not be cached."""
    flags = (reply[2] << 8) | reply[3]
    if flags & FLAG_TC:
        return None
    end = len(reply)
    if edns:
        option = 0 if ecs is None else 4 + 4 + (ecs.source + 7) // 8
        end -= 2 + option
        if end < qend + OPT_TAIL - 2 or int.from_bytes(reply[end : end + 2], "big") != option:
            return None  # not the OPT record this code writes last: do not cache
    flags &= ~RD_CD
    heads = tuple(
        (flags | (RD_CD & (bits << 8 | bits << 3))).to_bytes(2, "big") + reply[4:12]
        for bits in (0, 1, 2, 3)
    )
    body = reply[qend:end]
    return Variant(
        (heads[0], heads[1], heads[2], heads[3]),
        body,
        12 + len(body),
        Tally(decision.zone, qtype, decision.rcode, decision.steering),
    )


class Entry:
    """The variants of one key and its hit count (mutable, owned by one AnswerCache)."""

    __slots__ = ("cost", "hits", "next_draw", "oldest", "variants")

    def __init__(self, variant: Variant) -> None:
        self.cost = 0  # bytes its variants are costed at (gslb/dns/cache_costs.py)
        self.variants = [variant]
        self.hits = 0
        self.next_draw = 1  # random answers: the hit answered by a fresh draw
        self.oldest = 0  # the variant a fresh draw replaces once the set is full


class Known:
    """A query's bytes after the ID, parsed, and (within one cache epoch) what they led to.

    Most queries repeat bytes seen before (resolvers ask the same questions for the same
    subnets), so one lookup by those bytes finds the answer entry without the route, client
    and answer lookups. Those bytes hold everything a reply depends on but the ID (flags,
    question as spelled, EDNS, payload size, ECS), so for an answer that is not drawn at
    random the reply minus its ID is assembled once (`reply`, None when it would not fit:
    the full path truncates) and a hit is the query's ID plus those bytes. Random answers
    rotate through their entry's variants, assembled per hit. Linked only for queries
    whose answer does not depend on the peer address (none of the client, or the client's
    ECS subnet of non-zero source).
    """

    __slots__ = ("entry", "epoch", "parsed", "random", "reply", "tail", "variant")

    def __init__(self, parsed: Parsed) -> None:
        self.parsed = parsed
        self.epoch = -1  # no link yet
        self.random = False  # the linked route's answers are drawn at random
        self.entry: Entry | None = None  # random answers: the variants to rotate through
        self.tail = b""  # the OPT record's RDLENGTH and ECS echo (b"" without EDNS)
        self.variant: Variant | None = None  # otherwise: the one answer,
        self.reply: bytes | None = None  # and the reply without its ID


class AnswerCache:
    """Routes, client entries and answers for one (plan, state); see the module docstring."""

    def __init__(
        self,
        *,
        max_answers: int = 100_000,
        max_clients: int = 100_000,
        variants: int = 128,
        refresh_every: int = 1000,
        max_bytes: int | None = DEFAULT_CACHE_MEMORY,
    ) -> None:
        self.max_answers = max(1, max_answers)
        self.max_clients = max(1, max_clients)
        self.variants = max(1, variants)
        self.refresh_every = max(1, refresh_every)
        self.max_bytes = max_bytes
        self.plan: Plan | None = None
        self.state: State | None = None
        budget = costs.shares(max_bytes)
        self.routes: ClockCache[bytes, Route] = ClockCache(
            max_entries=self.max_answers, max_bytes=budget.routes, overhead=costs.ROUTE
        )
        # Answers: static ones depend on the plan only, steered ones on the state too. One
        # bound for both (`max_answers` variants, `budget.answers` bytes), kept by store().
        self.answer_bytes = budget.answers
        self.static: ClockCache[object, Entry] = ClockCache(
            max_entries=self.max_answers, overhead=costs.ENTRY, on_evict=self._evicted
        )
        self.steered: ClockCache[object, Entry] = ClockCache(
            max_entries=self.max_answers, overhead=costs.ENTRY, on_evict=self._evicted
        )
        self.clients: ClockCache[object, ClientInfo] = ClockCache(
            max_entries=self.max_clients, max_bytes=budget.clients, overhead=costs.CLIENT
        )
        # Region order by (service, location key): the client part of `geo` answer keys.
        self.rankings: ClockCache[tuple[str, object], tuple[str, ...]] = ClockCache(
            max_entries=self.max_clients, max_bytes=budget.rankings, overhead=costs.RANKING
        )
        # Parsed queries by their bytes after the ID (a pure function of those bytes, so
        # kept across plans and states), with links into the tables valid for one epoch.
        self.queries: ClockCache[bytes, Known] = ClockCache(
            max_entries=self.max_answers, max_bytes=budget.queries, overhead=costs.KNOWN
        )
        self.epoch = 0  # advanced whenever a new plan or state empties the tables above
        self._shared: dict[Any, Any] = {}  # one copy of equal heads and bodies
        self._tallies: dict[object, Tally] = {}  # one tally per set of metric labels
        self.size = 0  # variants stored in static and steered together
        self.hits = 0
        self.fills = 0

    def _evicted(self, entry: Entry) -> None:
        self.size -= len(entry.variants)

    def sync(self, plan: Plan, state: State) -> None:
        """Forget what a new plan or state invalidates (both are immutable snapshots)."""
        if plan is not self.plan:
            self.plan = plan
            self.state = state
            self.routes.clear()
            self.rankings.clear()
            # A client entry holds what the plan's operator networks say of it.
            self.clients.clear()
            self.static.clear()
            self.steered.clear()
            self._shared.clear()
            self.size = 0
            self.epoch += 1
        elif state is not self.state:
            self.state = state
            self.size -= sum(len(e.variants) for e in self.steered.values())
            self.steered.clear()
            self.epoch += 1

    def add_query(self, key: bytes, parsed: Parsed) -> Known:
        """Keep a parsed query, costed at its bytes twice (the key, and the reply minus the
        ID that repeats them once linked), evicting the least recently asked for."""
        known = Known(parsed)
        self.queries.put(key, known, 2 * len(key))
        return known

    def add_route(self, key: bytes, route: Route) -> None:
        """Learn the route of a (name, type): one per distinct name asked, so bounded like the
        answers (a flood of random names must not grow memory; links stay valid, as a route
        is only read on the way to an entry)."""
        self.routes.put(key, route, len(key))

    def client_part(self, route: Route, info: ClientInfo) -> object:
        """What of the client the answers of `route` depend on (see the module docstring);
        `route.kind` is not NONE."""
        kind = route.kind
        if not kind & GEO:
            return info.parts[kind]
        location = info.parts[GEO]
        ranking = self.rankings.get((route.service, location))
        if ranking is None:
            ranking = self._rank(route.service, info.client)
            self.rankings.put((route.service, location), ranking)
        return ranking if kind == GEO else (ranking, info.parts[HASHED])

    def _rank(self, service_name: str, client: Client) -> tuple[str, ...]:
        assert self.plan is not None
        service = self.plan.services.get(service_name)
        if service is None:  # cannot happen with a plan from compile_plan
            return (str(client.location),)
        return tuple(ranked.entry.region.name for ranked in rank_geo(service.regions, client))

    def add_client(self, key: object, info: ClientInfo) -> None:
        size = sum(map(len, info.tails)) + (len(key) if isinstance(key, bytes) else costs.PEER)
        self.clients.put(key, info, size)

    def store(self, route: Route, key: object, variant: Variant) -> None:
        """Keep a full-path reply under `key`: the first, another variant, or a fresh draw."""
        self.fills += 1
        # Many replies share their bytes (every NXDOMAIN of a zone has one body; most have
        # one of a few headers): keep one copy of each.
        shared = self._shared
        if len(shared) >= 2 * self.max_answers:
            shared.clear()
        if len(self._tallies) >= self.max_answers:
            self._tallies.clear()  # tallies in use stay with their variants
        variant = replace(
            variant,
            heads=shared.setdefault(variant.heads, variant.heads),
            body=shared.setdefault(variant.body, variant.body),
            tally=self._tallies.setdefault(variant.tally.labels, variant.tally),
        )
        table = self.steered if route.steered else self.static
        cost = costs.variant(variant)
        entry = table.peek(key)
        if entry is None:
            if not self._make_room(cost + costs.ENTRY):
                return
            entry = Entry(variant)
            entry.cost = cost
            table.put(key, entry, cost)
            self.size += 1
            return
        variants = entry.variants
        if len(variants) < self.variants:
            if not self._make_room(cost) or table.peek(key) is not entry:
                return  # no room, or the room was made by evicting this very entry
            variants.append(variant)
            entry.cost += cost
            table.put(key, entry, entry.cost)  # in place: the entry keeps its slot
            self.size += 1
        else:
            variants[entry.oldest] = variant
            entry.oldest = (entry.oldest + 1) % len(variants)

    def _make_room(self, cost: int) -> bool:
        """Evict answers (CLOCK, from the larger table) until one more variant of `cost`
        bytes fits both bounds; False when it cannot fit at all."""
        static, steered = self.static, self.steered
        limit = self.answer_bytes
        if limit is not None and cost > limit:
            return False
        while self.size >= self.max_answers or (
            limit is not None and static.bytes + steered.bytes + cost > limit
        ):
            first, then = (static, steered) if static.bytes >= steered.bytes else (steered, static)
            if not first.evict() and not then.evict():
                return False
        return True

    def schedule_draw(self, entry: Entry) -> None:
        """Set when `entry` (of a random answer) next gets a fresh draw, as one is made now:
        at the next hit until the set is full, then `refresh_every` hits on."""
        hits = entry.hits
        filling = len(entry.variants) + 1 < self.variants
        entry.next_draw = hits + 1 if filling else hits + self.refresh_every

    def entry(self, route: Route, key: object) -> Entry | None:
        return (self.steered if route.steered else self.static).get(key)
