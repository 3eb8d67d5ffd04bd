"""The answer memo: encoded reply parts by what the pure core says an answer depends on.

The responder (gslb/dns/responder.py) classifies each query it has not seen before
(`gslb.select.classify`) and looks its reply up here by the result, the `DecisionKey`,
plus the wire facts the reply's bytes read (the EDNS byte of `Parsed.key`: no EDNS, EDNS,
EDNS with DO). Only a key never seen costs a `decide` and an encoding (`encode_parts`):

* `Fixed` decisions (static records, NXDOMAIN, NODATA, referrals) depend on the question
  alone: keyed by `Parsed.key` (name in lower case, QTYPE, EDNS byte), or for a name that
  does not exist by the key its zone's shared NXDOMAIN has (gslb/dns/negative.py);
* `Steered` ones by (`Parsed.key`, the ranking's region order, the hash network): every
  client network that ranks the regions alike shares answers, however many places the
  database gives (tens of thousands of cities rank three regions in a handful of orders).
  The ECS scope the reply carries differs between such networks: it is not in the body
  but spliced in per query, with the question as the query spelled it and its ID.

Plan and state are not in the key: the tables drop what a new plan or state invalidates
(snapshots compared by identity, so a change is seen by the very next query). Fixed
answers depend on the plan only and survive health and admin changes.

Nothing else reaches an answer: the UDP payload size only decides truncation, which
`codec.assemble` does per query from the same parts.

Most queries repeat the bytes of an earlier one (same question, same subnet), so the
parsed query is memoized by its bytes after the ID (`Known`) and, for answers that do not
depend on the resolver's address, linked to its reply minus the ID until the next plan or
state change (`epoch`): a repeated query costs one dictionary lookup and one concatenation.

Random answers (`weighted` policy, `all` and `weighted` selection) keep up to
`variants` replies per key (128), each one drawn with the responder's RNG, served in
turn. A key's first queries are each a fresh draw until it holds `variants` of them;
after that every `refresh_every`-th hit (1000) is, and its draw replaces the oldest.
Each stored draw is served as often as any other whatever it contains, so across queries
the answers follow the weights exactly in expectation, and any run of 128 or more queries
of one key shows the shares of 128 independent draws (for a 3:1 weight, 75% give or take
4%).

Memory is bounded: at most `max_answers` variants, questions and parsed queries and
`max_clients` client entries and rankings, and `max_bytes` (`dns.cache_memory`) for the
tables together, each entry costed by its bytes plus a measured overhead
(gslb/dns/cache_costs.py). A full table evicts one entry at a time, the least recently
asked for first (CLOCK, gslb/evicting.py), so a burst of new keys does not throw away the
hot set. A query linked to an evicted answer keeps serving it (it is still the answer
for the plan and state it was made for) until the next plan or state change.
"""

from __future__ import annotations

from typing import Any

from gslb.dns import cache_costs as costs
from gslb.dns.cache_costs import DEFAULT_CACHE_MEMORY
from gslb.dns.codec import ReplyParts, lookup_name, qtype_label
from gslb.dns.fastparse import Parsed
from gslb.evicting import ClockCache
from gslb.plan import Plan
from gslb.select import Client, Decision, Question, RankingMemo, Steering
from gslb.state import State

RD_CD = 0x0110


class Tally:
    """How often cached replies with these metric labels were served since the metrics
    last counted them.

    A reply only bumps `n` (and hands the tally to the observer on its first one since the
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


class Variant:
    """One cached reply: `ReplyParts` with the header made once per RD and CD bits."""

    __slots__ = ("body", "heads", "opt", "tally")

    def __init__(self, parts: ReplyParts, tally: Tally) -> None:
        # Flags and counts, by the query's RD and CD bits as (wire[2] & 1) | ((wire[3] >> 3)
        # & 2) (RD is 0x0100, CD 0x0010).
        self.heads = tuple(
            (parts.flags | (RD_CD & (bits << 8 | bits << 3))).to_bytes(2, "big") + parts.counts
            for bits in (0, 1, 2, 3)
        )
        self.body = parts.body
        self.opt = parts.opt  # the OPT record up to RDLENGTH; b"" without EDNS
        self.tally = tally

    def size(self, question: int, option: int) -> int:
        """The reply's length with a question and an OPT RDLENGTH + options of these sizes."""
        return 12 + question + len(self.body) + (len(self.opt) + option if self.opt else 0)


def tallied_variant(parts: ReplyParts, decision: Decision, qtype: int) -> Variant:
    """A reply's parts as a `Variant`, with the tally of its metric labels."""
    return Variant(parts, Tally(decision.zone, qtype, decision.rcode, decision.steering))


def head_index(wire: bytes) -> int:
    """Which of `Variant.heads` a query's RD and CD bits select."""
    return (wire[2] & 1) | ((wire[3] >> 3) & 2)


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

    Those bytes hold everything a reply depends on but the ID (flags, question as spelled,
    EDNS, payload size, ECS), so for an answer that is not drawn at random the reply minus
    its ID is assembled once (`reply`) and a hit is the query's ID plus those bytes. Random
    answers rotate through their entry's variants, assembled per hit. Linked only for
    UDP replies that fit and whose answer does not depend on the peer address (none of
    the client, or the client's ECS subnet of non-zero source).
    """

    __slots__ = ("entry", "epoch", "option", "parsed", "random", "reply", "variant")

    def __init__(self, parsed: Parsed) -> None:
        self.parsed = parsed
        self.epoch = -1  # no link yet
        self.random = False  # the linked answers are drawn at random
        self.entry: Entry | None = None  # random answers: the variants to rotate through
        self.option = b""  # the OPT record's RDLENGTH and ECS echo (b"" without EDNS)
        self.variant: Variant | None = None  # otherwise: the one answer,
        self.reply: bytes | None = None  # and the reply without its ID


class AnswerCache:
    """Parsed queries, questions, clients and answers for one (plan, state); see the module
    docstring."""

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
        # Questions as text by the wire name and QTYPE: a pure function of those bytes.
        self.questions: ClockCache[bytes, Question] = ClockCache(
            max_entries=self.max_answers, max_bytes=budget.questions, overhead=costs.QUESTION
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
        # Clients by their ECS option (or peer address): the GeoIP lookup, once.
        self.clients: ClockCache[object, Client] = ClockCache(
            max_entries=self.max_clients, max_bytes=budget.clients, overhead=costs.CLIENT
        )
        self.rankings = RankingMemo(self.max_clients)  # region orders per place
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
            # A client holds what the plan's operator networks say of it.
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

    def question(self, q: Parsed) -> Question:
        """The question of a parsed query as selection takes it (name as text, QTYPE)."""
        key = q.key[:-1]  # without the EDNS byte
        found = self.questions.get(key)
        if found is None:
            found = Question(lookup_name(wire_labels(key)), q.qtype)
            self.questions.put(key, found, len(key) + len(found.name))
        return found

    def add_client(self, key: object, client: Client) -> None:
        self.clients.put(key, client, len(key) if isinstance(key, bytes) else costs.PEER)

    def store(self, table: ClockCache[object, Entry], key: object, variant: Variant) -> None:
        """Keep a reply under `key`: the first, another variant, or a fresh draw."""
        self.fills += 1
        # Many replies share their bytes (every NXDOMAIN of a zone has one body; most have
        # one of a few headers): keep one copy of each.
        shared = self._shared
        if len(shared) >= 2 * self.max_answers:
            shared.clear()
        if len(self._tallies) >= self.max_answers:
            self._tallies.clear()  # tallies in use stay with their variants
        variant.heads = shared.setdefault(variant.heads, variant.heads)
        variant.body = shared.setdefault(variant.body, variant.body)
        variant.tally = self._tallies.setdefault(variant.tally.labels, variant.tally)
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


def wire_labels(name: bytes) -> tuple[bytes, ...]:
    """The labels of an uncompressed wire name (as the fast parser checked it)."""
    labels = []
    pos = 0
    length = name[0]
    while length:
        labels.append(name[pos + 1 : pos + 1 + length])
        pos += length + 1
        length = name[pos]
    return tuple(labels)
