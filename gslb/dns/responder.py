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
from dataclasses import dataclass
from typing import Protocol

from dnslib import TXT

from gslb.dns.answers import (
    AnswerCache,
    ClientInfo,
    Entry,
    Known,
    Route,
    Tally,
    client_info,
    head_index,
    route_of,
    variant_of,
)
from gslb.dns.codec import (
    CLASS_ANY,
    CLASS_CH,
    CLASS_IN,
    MIN_UDP,
    NOTAUTH,
    Drop,
    Query,
    WireError,
    decode_query,
    encode_error,
    encode_reply,
    max_reply_size,
)
from gslb.dns.ecs import ClientSubnet, parse_ecs
from gslb.dns.fastparse import COUNTS_OF_ONE_QUESTION, NO_EDNS, Parsed, parse_query
from gslb.dns.negative import nxdomain_route
from gslb.dnssec.wire import TYPE_NXNAME
from gslb.histogram import Histogram
from gslb.netrules import NetworkRules
from gslb.plan import Plan, RRSet
from gslb.ratelog import RateLog
from gslb.select import (
    FORMERR,
    NOTIMP,
    NXDOMAIN,
    REFUSED,
    SERVFAIL,
    Client,
    Decision,
    RankingMemo,
    Steering,
    select,
)
from gslb.select.client import GeoLookup, locate
from gslb.state import State

log = logging.getLogger(__name__)

ZONE_TRANSFERS = frozenset({251, 252})  # IXFR, AXFR
QTYPE_TXT, QTYPE_ANY = 16, 255
NO_OPTIONS = b"\x00\x00"  # an OPT record's RDLENGTH without options


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


@dataclass(frozen=True, slots=True)
class View:
    """The plan and state one query reads: taken once, never torn."""

    plan: Plan
    state: State


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
    """Answers queries: common ones from the answer cache (fast path), the rest by dnslib.

    The fast path (gslb/dns/fastparse.py, gslb/dns/answers.py) answers UDP queries it can
    parse by hand from cached reply bytes; every cached reply was made by the full path
    for a query of the same key, so both paths give the same bytes. Misses, TCP and
    anything unusual take the full path: decode with dnslib, `select()`, encode.
    `answer_cached` is the part of the fast path that needs no peer address (queries
    seen before); the UDP server tries it first.
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
        self._rankings = RankingMemo(self.cache.max_clients)  # geo rankings per place

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
            view.plan, view.state, query.name, query.qtype, client, self._rng, memo=self._rankings
        )
        if query.edns is not None and query.edns.do and decision.zone is not None:
            zone = view.plan.zones[decision.zone]
            if zone.signer is not None:
                return zone.signer.secure(decision, zone, query.name, self._wall_clock())
        return decision

    def handle_wire(self, wire: bytes, peer: str, tcp: bool = False) -> bytes | None:
        """The reply to one query (None: send nothing)."""
        if not tcp:
            reply = self.answer_cached(wire)
            if reply is not None:
                return reply
        return self.answer_uncached(wire, peer, tcp)

    def answer_uncached(self, wire: bytes, peer: str, tcp: bool = False) -> bytes | None:
        """`handle_wire` for a query `answer_cached` did not answer (or any TCP query)."""
        # QR clear, opcode QUERY, one question, no answer or authority records: a query the
        # fast path may answer (fastparse.is_plain_query, inlined as this runs per query).
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
            return self._fast(wire, known, peer, view, started, tcp)
        except Exception:
            self._log.exception("fast", "fast path failed; answering by the full path")
            return self._full(wire, peer, tcp, view, started)[0]

    def answer_cached(self, wire: bytes) -> bytes | None:
        """The common case alone: the reply to a UDP query seen before whose answer is linked
        (gslb/dns/answers.py, `Known`), else None, and then `answer_uncached` answers.

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
                # Take the variants in turn; some hits are a fresh draw by the full path
                # instead (see gslb/dns/answers.py), which `answer_uncached` makes.
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
                        known.tail,
                    )
                )
                if len(reply) > MIN_UDP and self._too_big(len(reply), known.parsed):
                    return None  # the full path truncates
            else:
                after_id = known.reply
                if after_id is None:  # it would not fit: the full path truncates
                    return None
                reply = wire[:2] + after_id
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
        """The full path alone, never the cache: what every cached answer must equal."""
        return self._full(wire, peer, tcp, self._view(), self._clock())[0]

    # The fast path.

    def _fast(
        self, wire: bytes, known: Known, peer: str, view: View, started: float, tcp: bool
    ) -> bytes | None:
        """A query not linked to its entry: look the answer up by its parts."""
        q = known.parsed
        found = self._lookup(known, wire, peer)
        if found is None:
            return self._fill(wire, q, peer, view, started, tcp)
        route, entry, tail = found
        cache = self.cache
        hits = entry.hits = entry.hits + 1
        if route.random and hits >= entry.next_draw:
            cache.schedule_draw(entry)
            return self._fill(wire, q, peer, view, started, tcp)  # a fresh draw, kept
        variants = entry.variants
        variant = variants[hits % len(variants)]
        size = variant.length + len(tail) + q.qend - 12
        if size > MIN_UDP and not tcp and self._too_big(size, q):
            return self._full(wire, peer, False, view, started)[0]  # the full path truncates
        cache.hits += 1
        reply = b"".join(
            (
                wire[:2],
                variant.heads[head_index(wire)],
                wire[12 : q.qend],
                variant.body,
                tail,
            )
        )
        tally = variant.tally
        if not tally.n:
            self._observer.watch(tally)
        tally.n += 1
        self._latency.observe(self._clock() - started)
        return reply

    def _lookup(self, known: Known, wire: bytes, peer: str) -> tuple[Route, Entry, bytes] | None:
        """The answer entry for a query by its parts; None when something is not cached yet.

        Links the result to `known` for the rest of the epoch when the answer does not
        depend on the peer's address.
        """
        cache = self.cache
        q = known.parsed
        ecs = q.ecs
        info: ClientInfo | None = None
        if ecs is not None:
            # Made even when the answer does not depend on the client: only valid ECS
            # options make an entry, so having one also validates the option. A client not
            # seen before costs its GeoIP lookup here, not a full-path answer.
            info = self._client(ecs if ecs[2] else (peer, ecs), ecs, peer)
            if info is None:
                return None  # a bad option: the full path answers FORMERR
        route = cache.routes.get(q.key)
        if route is None:
            # A name not asked before: one that does not exist shares its zone's answer.
            assert cache.plan is not None  # synced with the view before any lookup
            route = nxdomain_route(cache.plan, q)
            if route is None:
                return None
            cache.add_route(q.key, route)
        kind = route.kind
        if kind:
            if info is None:
                info = self._client(peer, None, peer)
                if info is None:
                    return None
            entry = cache.entry(route, (q.key, cache.client_part(route, info)))
        else:
            entry = cache.entry(route, q.key if route.shared is None else route.shared)
        if entry is None:
            return None
        # The OPT record's RDLENGTH and options: the client's ECS echo, or none.
        if ecs is not None and info is not None:
            tail = info.tails[kind]
        else:
            tail = NO_OPTIONS if q.edns else b""
        if not kind or (ecs is not None and ecs[2]):
            known.epoch = cache.epoch
            known.random = route.random
            known.entry = entry
            known.tail = tail
            if not route.random:
                # One answer, so the reply minus the ID is assembled once.
                variant = entry.variants[0]
                size = variant.length + len(tail) + q.qend - 12
                known.variant = variant
                known.reply = (
                    None
                    if size > MIN_UDP and self._too_big(size, q)
                    else variant.heads[head_index(wire)] + wire[12 : q.qend] + variant.body + tail
                )
        return route, entry, tail

    def _too_big(self, size: int, q: Parsed) -> bool:
        if q.edns == NO_EDNS:
            return size > MIN_UDP
        return size > max(MIN_UDP, min(q.udp_size, self.udp_cap))

    def _client(self, key: object, ecs: bytes | None, peer: str) -> ClientInfo | None:
        """The client entry for `key`, made and kept on first use; None for a bad option."""
        info = self.cache.clients.get(key)
        if info is not None:
            return info
        try:
            subnet = parse_ecs(ecs) if ecs is not None else None
            plan = self.cache.plan  # synced with the view before any lookup
            rules = plan.networks if plan is not None else None
            info = client_info(client_from(subnet, peer, self._geo, rules), ecs)
        except ValueError:  # EcsError, or a peer that is not an address
            return None
        self.cache.add_client(key, info)
        return info

    def _fill(
        self, wire: bytes, q: Parsed, peer: str, view: View, started: float, tcp: bool
    ) -> bytes | None:
        """Answer by the full path and keep the reply for the queries that share its key
        (a TCP reply too: UDP hits check their size limit, the full path truncates)."""
        reply, query, decision = self._full(wire, peer, tcp, view, started)
        if reply is None or query is None or decision is None:
            return reply  # an error reply (a bad ECS option among them), or none
        if reply[12 : q.qend] != wire[12 : q.qend]:
            return reply  # not the question as sent: never the case, but never cache it
        cache = self.cache
        route = nxdomain_route(view.plan, q) if decision.rcode == NXDOMAIN else None
        if route is None:
            route = route_of(decision, view.plan)
        cache.add_route(q.key, route)
        ecs = q.ecs
        if ecs is not None:
            info = self._client(ecs if ecs[2] else (peer, ecs), ecs, peer)
        elif route.kind:
            info = self._client(peer, None, peer)
        else:
            info = None
        if (ecs is not None or route.kind) and info is None:
            return reply
        if route.kind and info is not None:
            key: object = (q.key, cache.client_part(route, info))
        else:
            key = q.key if route.shared is None else route.shared
        ecs_subnet = query.edns.ecs if query.edns is not None else None
        variant = variant_of(reply, q.qend, q.edns != NO_EDNS, ecs_subnet, decision, q.qtype)
        if variant is not None:
            cache.store(route, key, variant)
        return reply

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
