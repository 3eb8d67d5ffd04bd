"""`Responder.handle_wire()`: one query's bytes in, the reply's bytes out.

Shared by the UDP and TCP servers, which only move bytes. Every wire error
becomes FORMERR/NOTIMP/BADVERS here, and any unexpected failure SERVFAIL, so
no input can stop the server.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Protocol

from dnslib import TXT, DNSLabel

from gslb.dns.answers import (
    AnswerCache,
    Entry,
    Known,
    Tally,
    Variant,
    head_index,
    tallied_variant,
    wire_labels,
)
from gslb.dns.codec import (
    CLASS_ANY,
    CLASS_CH,
    CLASS_IN,
    FLAG_TC,
    MIN_UDP,
    NOTAUTH,
    Drop,
    Edns,
    Query,
    WireError,
    decode_query,
    ecs_option,
    encode_error,
    encode_parts,
    encode_reply,
    max_reply_size,
    splice,
    udp_limit,
)
from gslb.dns.ecs import ClientSubnet, parse_ecs
from gslb.dns.fastparse import COUNTS_OF_ONE_QUESTION, EDNS_DO, NO_EDNS, Parsed, parse_query
from gslb.dns.negative import shared_nxdomain
from gslb.dnssec.wire import TYPE_NXNAME
from gslb.evicting import ClockCache
from gslb.histogram import Histogram
from gslb.netrules import NetworkRules
from gslb.plan import Plan, RRSet
from gslb.ratelog import RateLog
from gslb.select import (
    FORMERR,
    NOTIMP,
    REFUSED,
    SERVFAIL,
    Client,
    Decision,
    DecisionKey,
    Fixed,
    Question,
    Steering,
    classify,
    decide,
    select,
)
from gslb.select.client import GeoLookup, locate
from gslb.state import View

log = logging.getLogger(__name__)

ZONE_TRANSFERS = frozenset({251, 252})  # IXFR, AXFR
QTYPE_TXT, QTYPE_ANY = 16, 255


class QueryObserver(Protocol):
    """Counts answered queries (metrics).

    The full path reports each query with `observe_query`. A cache hit costs less than that
    call, so hits bump the served reply's `Tally` instead, and hand it to `watch` on its
    first hit since the observer last counted it; every hit's duration goes straight into
    `latency`.
    """

    latency: Histogram

    def observe_query(
        self, zone: str | None, qtype: int, rcode: int, steering: Steering | None, seconds: float
    ) -> None: ...

    def watch(self, tally: Tally) -> None: ...


class Unobserved:
    """The observer of a responder that keeps no metrics."""

    def __init__(self) -> None:
        self.latency = Histogram((1.0,))

    def observe_query(
        self, zone: str | None, qtype: int, rcode: int, steering: Steering | None, seconds: float
    ) -> None:
        pass

    def watch(self, tally: Tally) -> None:
        pass  # tally.n is never reset, so this is called once per tally


def client_for(
    query: Query | None, peer: str, geo: GeoLookup | None, rules: NetworkRules | None = None
) -> Client:
    """The client a decision is about: the ECS subnet when sent, else the resolver."""
    ecs = query.edns.ecs if query is not None and query.edns is not None else None
    return client_from(ecs, peer, geo, rules)


def client_from(
    ecs: ClientSubnet | None, peer: str, geo: GeoLookup | None, rules: NetworkRules | None = None
) -> Client:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    if ecs is not None and ecs.source > 0:
        address = ecs.address
    else:
        address = ipaddress.ip_address(peer)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
    return locate(address, ecs.source if ecs is not None else None, geo, rules)


IDENTITY_NAMES = ("id.server.", "hostname.bind.")  # RFC 4892 §2.3; BIND's older name
CHAOS_REFUSED = Decision(REFUSED, False)
CHAOS_NODATA = Decision(0, True)


def identity_answers(identity: str | None) -> dict[str, Decision]:
    """The CH TXT answer per name for `dns.identity` (TTL 0, as NSD); none without it."""
    if identity is None:
        return {}
    return {
        name: Decision(0, True, (RRSet(name, QTYPE_TXT, 0, (TXT([identity.encode("ascii")]),)),))
        for name in IDENTITY_NAMES
    }


class Responder:
    """Answers queries: the common ones by the answer memo (gslb/dns/answers.py), the rest
    by dnslib.

    Plain queries (gslb/dns/fastparse.py) are classified (`gslb.select.classify`) and
    their reply's parts looked up by the decision key; only a key never seen is decided
    and encoded (`codec.encode_parts`), and the reply is assembled from the parts and what
    the query brings (`codec.assemble` does the same for the full path, so both give the
    same bytes). Anything else takes the full path: decode with dnslib, `select()`, encode.
    `answer_cached` is the part that needs no peer address (queries seen before, linked to
    their reply); the UDP server tries it first, and `handle_wire` begins with it.
    """

    def __init__(
        self,
        view: Callable[[], View],
        geo: GeoLookup | None,
        *,
        udp_cap: int = 1232,
        rng: random.Random | None = None,
        observer: QueryObserver | None = None,
        clock: Callable[[], float] = time.perf_counter,
        cache: AnswerCache | None = None,
        identity: str | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """`wall_clock`: the time signatures are made at (DNSSEC validity periods)."""
        self._view = view
        self._geo = geo
        self.udp_cap = udp_cap
        self._rng = rng or random.Random()
        self._observer: QueryObserver = observer if observer is not None else Unobserved()
        self._latency = self._observer.latency
        self._clock = clock
        self.cache = cache if cache is not None else AnswerCache()
        self._known = self.cache.queries  # cleared in place, never replaced
        self._log = RateLog(log)  # any client can make the query path log: one line per kind
        self._identity = identity_answers(identity)
        self._wall_clock = wall_clock

    def decide(
        self, query: Query, peer: str, view: View | None = None, tcp: bool = False
    ) -> Decision:
        if view is None:
            view = self._view()
        if query.qclass not in (CLASS_IN, CLASS_ANY):  # ANY is answered like IN, as Knot does
            if query.qclass == CLASS_CH:  # only the identity, when configured (as NSD)
                answer = self._identity.get(query.name)
                if answer is None:
                    return CHAOS_REFUSED
                return answer if query.qtype in (QTYPE_TXT, QTYPE_ANY) else CHAOS_NODATA
            return Decision(REFUSED, False)
        if query.qtype in ZONE_TRANSFERS:
            # Never served (zone data is steered, not static). As Knot: not over UDP at
            # all; over TCP, NOTAUTH outside our zones, REFUSED inside.
            if not tcp:
                return Decision(NOTIMP, False)
            if view.plan.find_zone(query.name) is None:
                return Decision(NOTAUTH, False)
            return Decision(REFUSED, False)
        if query.qtype == TYPE_NXNAME:
            # RFC 9824 §3.5: NXNAME only ever appears in compact denial's NSEC bitmaps; a
            # server that signs with it answers an explicit query for it FORMERR.
            zone = view.plan.find_zone(query.name)
            if zone is not None and zone.signer is not None:
                return Decision(FORMERR, False)
        client = client_for(query, peer, self._geo, view.plan.networks)
        decision = select(
            view.plan,
            view.state,
            query.name,
            query.qtype,
            client,
            self._rng,
            memo=self.cache.rankings,
        )
        if query.edns is not None and query.edns.do:
            return self._signed(decision, query.name, view.plan)
        return decision

    def _signed(self, decision: Decision, name: str, plan: Plan) -> Decision:
        """`decision` as a DO=1 query gets it: signed when its zone is."""
        if decision.zone is None:
            return decision
        zone = plan.zones[decision.zone]
        if zone.signer is None:
            return decision
        return zone.signer.secure(decision, zone, name, self._wall_clock())

    def handle_wire(self, wire: bytes, peer: str, tcp: bool = False) -> bytes | None:
        """The reply to one query (None: send nothing); UDP, TCP and the tests all call it.

        A UDP server may call `answer_cached` first and this only when that returns None,
        so that it makes the peer's address only for those."""
        if not tcp:
            reply = self.answer_cached(wire)
            if reply is not None:
                return reply
        # QR clear, opcode QUERY, one question, no answer or authority records: a query the
        # memo may answer (fastparse.is_plain_query, inlined as this runs per query).
        # TCP takes it too: its replies are the UDP ones, never truncated.
        if len(wire) < 17 or wire[2] & 0xF8 or wire[4:10] != COUNTS_OF_ONE_QUESTION:
            return self._full(wire, peer, tcp, self._view(), self._clock())[0]
        started = self._clock()
        rest = wire[2:]
        known = self._known.get(rest)
        if known is None:
            parsed = parse_query(wire)
            if parsed is None:
                return self._full(wire, peer, tcp, self._view(), started)[0]
            known = self.cache.add_query(rest, parsed)
        view = self._view()
        if view.plan is not self.cache.plan or view.state is not self.cache.state:
            self.cache.sync(view.plan, view.state)
        try:
            reply = self._answer(wire, known, peer, view, started, tcp)
        except Exception:
            self._log.exception("memo", "answer memo failed; answering by the full path")
            reply = None
        if reply is None:
            return self._full(wire, peer, tcp, view, started)[0]
        return reply

    def answer_cached(self, wire: bytes) -> bytes | None:
        """The common case alone: the reply to a UDP query seen before whose answer is linked
        (gslb/dns/answers.py, `Known`), else None, and then `handle_wire` answers.

        Needs no peer address (a linked answer does not depend on it), so the UDP server
        can skip making one for most queries. Only plain queries are ever memoized, so a
        memo hit is one. Never raises.
        """
        try:
            started = self._clock()
            known = self._known.get(wire[2:])
            if known is None:
                return None
            view = self._view()
            cache = self.cache
            if view.plan is not cache.plan or view.state is not cache.state:
                cache.sync(view.plan, view.state)
            if known.epoch != cache.epoch:
                return None
            if known.random:
                # Take the variants in turn; some hits are a fresh draw instead (see
                # gslb/dns/answers.py), which `handle_wire` makes.
                entry = known.entry
                assert entry is not None
                hits = entry.hits + 1
                if hits >= entry.next_draw:
                    return None
                entry.hits = hits
                variants = entry.variants
                variant = variants[hits % len(variants)]
                reply = b"".join(
                    (
                        wire[:2],
                        # head_index(wire), inlined: this runs per query
                        variant.heads[(wire[2] & 1) | ((wire[3] >> 3) & 2)],
                        wire[12 : known.parsed.qend],
                        variant.body,
                        variant.opt,
                        known.option,
                    )
                )
                if len(reply) > MIN_UDP and len(reply) > self._max_udp(known.parsed):
                    return None  # `handle_wire` truncates
            else:
                reply = wire[:2] + known.reply  # type: ignore[operator]  # set when linked
                variant = known.variant  # type: ignore[assignment]  # set with reply
            cache.hits += 1
            tally = variant.tally
            if not tally.n:
                self._observer.watch(tally)
            tally.n += 1
            latency = self._latency
            seconds = self._clock() - started
            latency.counts[bisect_left(latency.bounds, seconds)] += 1
            latency.total += seconds
            return reply
        except Exception:  # a bug must cost this answer its speed, not the answer
            self._log.exception("cached", "cached answer failed; answering by the full path")
            return None

    def answer_full(self, wire: bytes, peer: str, tcp: bool = False) -> bytes | None:
        """The full path alone, never the memo: what every memoized answer must equal."""
        return self._full(wire, peer, tcp, self._view(), self._clock())[0]

    # The answer memo.

    def _answer(
        self, wire: bytes, known: Known, peer: str, view: View, started: float, tcp: bool
    ) -> bytes | None:
        """The reply to a plain query by its decision key; None: the full path answers."""
        q = known.parsed
        if q.qtype == TYPE_NXNAME:
            return None  # FORMERR in signed zones: `decide` (the full path) knows
        client = self._client(q, peer, view)
        if client is None:
            return None  # a bad ECS option (FORMERR) or peer
        cache = self.cache
        question = cache.question(q)
        key = classify(view.plan, question, client, cache.rankings)
        ecs = q.ecs
        if isinstance(key, Fixed):
            table = cache.static
            memo_key = shared_nxdomain(q, question, key.decision) or q.key
            drawn = False
            scope = key.decision.scope
            linkable = True  # the same answer for every client
        else:
            table = cache.steered
            memo_key = (q.key, key.order, key.hash_key)
            drawn = key.random
            scope = key.scope
            linkable = not key.reads_client or (ecs is not None and ecs[2] != 0)
        entry = table.get(memo_key)
        if entry is None:
            variant = self._fill(table, memo_key, key, question, q, view)
        else:
            hits = entry.hits = entry.hits + 1
            if drawn and hits >= entry.next_draw:
                cache.schedule_draw(entry)
                variant = self._fill(table, memo_key, key, question, q, view)
            else:
                variants = entry.variants
                variant = variants[hits % len(variants)]
                cache.hits += 1
        # The OPT record's RDLENGTH and options: the client's ECS echo with the scope, or none.
        if ecs is not None:
            option = ecs_option(ecs[:3] + bytes((min(scope, ecs[2]),)) + ecs[4:])
        else:
            option = ecs_option(b"") if q.edns != NO_EDNS else b""
        reply = splice(
            wire[:2],
            variant.heads[head_index(wire)],
            wire[12 : q.qend],
            variant.body,
            variant.opt,
            option,
            65535 if tcp else self._max_udp(q),
        )
        fits = not reply[2] & FLAG_TC >> 8  # the variant never carries TC: splice set it
        if linkable and fits and not tcp:
            known.epoch = cache.epoch
            known.random = drawn
            if drawn:
                known.option = option  # the reply is assembled per hit
                known.entry = table.peek(memo_key)
                if known.entry is None:  # not kept (no room): nothing to rotate through
                    known.epoch = -1
            else:
                known.variant = variant
                known.reply = reply[2:]
        tally = variant.tally
        if not tally.n:
            self._observer.watch(tally)
        tally.n += 1
        self._latency.observe(self._clock() - started)
        return reply

    def _fill(
        self,
        table: ClockCache[object, Entry],
        memo_key: object,
        key: DecisionKey,
        question: Question,
        q: Parsed,
        view: View,
    ) -> Variant:
        """Decide and encode the answer for a decision key, and keep it under `memo_key`."""
        decision = decide(view.plan, view.state, key, self._rng)
        if q.edns == EDNS_DO:
            decision = self._signed(decision, question.name, view.plan)
        query = Query(
            0,
            0,
            DNSLabel(list(wire_labels(q.key))),
            question.name,
            q.qtype,
            CLASS_IN,
            None if q.edns == NO_EDNS else Edns(q.udp_size, 0, q.edns == EDNS_DO, None),
        )
        parts = encode_parts(
            query,
            decision.rcode,
            decision.authoritative,
            (decision.answer, decision.authority, decision.additional),
            udp_cap=self.udp_cap,
        )
        variant = tallied_variant(parts, decision, q.qtype)
        self.cache.store(table, memo_key, variant)
        return variant

    def _client(self, q: Parsed, peer: str, view: View) -> Client | None:
        """The client a decision is about (as `client_for`), made once per ECS option or
        peer address; None for a bad option or a peer that is not an address."""
        ecs = q.ecs
        key: object = peer if ecs is None else ecs if ecs[2] else (peer, ecs)
        clients = self.cache.clients
        client = clients.get(key)
        if client is None:
            try:
                subnet = parse_ecs(ecs) if ecs is not None else None
                client = client_from(subnet, peer, self._geo, view.plan.networks)
            except ValueError:  # EcsError, or a peer that is not an address
                return None
            self.cache.add_client(key, client)
        return client

    def _max_udp(self, q: Parsed) -> int:
        """The largest UDP reply the query may get."""
        return udp_limit(None if q.edns == NO_EDNS else q.udp_size, self.udp_cap)

    # The full path.

    def _full(
        self, wire: bytes, peer: str, tcp: bool, view: View, started: float
    ) -> tuple[bytes | None, Query | None, Decision | None]:
        query: Query | None = None
        decision: Decision | None = None
        try:
            query = decode_query(wire)
            decision = self.decide(query, peer, view, tcp)
            reply = encode_reply(
                query,
                decision.rcode,
                decision.authoritative,
                (decision.answer, decision.authority, decision.additional),
                max_size=max_reply_size(query, self.udp_cap, tcp),
                udp_cap=self.udp_cap,
                ecs_scope=decision.scope,
            )
            rcode = decision.rcode
        except Drop:
            return None, None, None
        except WireError as exc:
            reply_or_none = encode_error(exc, wire, self.udp_cap)
            self._observe(exc.query or query, exc.rcode, None, started)
            return reply_or_none, None, None
        except Exception:
            self._log.exception("servfail", "SERVFAIL: unexpected error answering %r", wire[:64])
            if query is None:
                return None, None, None
            self._observe(query, SERVFAIL, None, started)
            return self._servfail(query, wire), None, None
        self._observe(query, rcode, decision, started)
        return reply, query, decision

    def _servfail(self, query: Query, wire: bytes) -> bytes | None:
        """SERVFAIL for a query whose answer failed; never raises (whatever made the answer
        fail may make this fail too, e.g. a name too long to encode)."""
        try:
            return encode_reply(
                query, SERVFAIL, False, ((), (), ()), max_size=512, udp_cap=self.udp_cap
            )
        except Exception:
            try:
                return encode_error(
                    WireError(SERVFAIL, "", header=(query.id, query.flags)), wire, self.udp_cap
                )
            except Exception:
                return None

    def _observe(
        self, query: Query | None, rcode: int, decision: Decision | None, started: float
    ) -> None:
        self._observer.observe_query(
            decision.zone if decision is not None else None,
            query.qtype if query is not None else 0,
            rcode,
            decision.steering if decision is not None else None,
            self._clock() - started,
        )
