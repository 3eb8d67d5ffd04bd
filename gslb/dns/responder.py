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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gslb.dns.codec import (
    CLASS_IN,
    Drop,
    Query,
    WireError,
    decode_query,
    encode_error,
    encode_reply,
    max_reply_size,
)
from gslb.geo import Location
from gslb.plan import Plan
from gslb.select import REFUSED, SERVFAIL, Client, Decision, Steering, select
from gslb.state import State

log = logging.getLogger(__name__)

ZONE_TRANSFERS = frozenset({251, 252})  # IXFR, AXFR


class GeoLookup(Protocol):
    def lookup(
        self, address: str | ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> Location | None: ...


class QueryObserver(Protocol):
    """Receives one call per answered query (metrics)."""

    def observe_query(
        self, zone: str | None, qtype: int, rcode: int, steering: Steering | None, seconds: float
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class View:
    """The plan and state one query reads: taken once, never torn."""

    plan: Plan
    state: State


def client_for(query: Query | None, peer: str, geo: GeoLookup | None) -> Client:
    """The client a decision is about: the ECS subnet when sent, else the resolver."""
    ecs = query.edns.ecs if query is not None and query.edns is not None else None
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    if ecs is not None and ecs.source > 0:
        address = ecs.address
    else:
        address = ipaddress.ip_address(peer)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
    source = ecs.source if ecs is not None else None
    if geo is None:
        return Client(address, source, None, 0)
    location = geo.lookup(address)
    full = source if source is not None else address.max_prefixlen
    geo_prefix = location.prefix_len if location is not None else full
    return Client(address, source, location, geo_prefix)


class Responder:
    def __init__(
        self,
        view: Callable[[], View],
        geo: GeoLookup | None,
        *,
        udp_cap: int = 1232,
        rng: random.Random | None = None,
        observer: QueryObserver | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._view = view
        self._geo = geo
        self.udp_cap = udp_cap
        self._rng = rng or random.Random()
        self._observer = observer
        self._clock = clock

    def decide(self, query: Query, peer: str) -> Decision:
        view = self._view()
        if query.qclass != CLASS_IN or query.qtype in ZONE_TRANSFERS:
            # Zone transfers are never served: zone data is steered, not static.
            return Decision(REFUSED, False)
        client = client_for(query, peer, self._geo)
        return select(view.plan, view.state, query.name, query.qtype, client, self._rng)

    def handle_wire(self, wire: bytes, peer: str, tcp: bool = False) -> bytes | None:
        started = self._clock()
        query: Query | None = None
        decision: Decision | None = None
        try:
            query = decode_query(wire)
            decision = self.decide(query, peer)
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
            return None
        except WireError as exc:
            reply_or_none = encode_error(exc, self.udp_cap)
            self._observe(exc.query or query, exc.rcode, None, started)
            return reply_or_none
        except Exception:
            log.exception("SERVFAIL: unexpected error answering %r", wire[:64])
            if query is None:
                return None
            reply = encode_reply(
                query, SERVFAIL, False, ((), (), ()), max_size=512, udp_cap=self.udp_cap
            )
            rcode = SERVFAIL
        self._observe(query, rcode, decision, started)
        return reply

    def _observe(
        self, query: Query | None, rcode: int, decision: Decision | None, started: float
    ) -> None:
        if self._observer is None:
            return
        self._observer.observe_query(
            decision.zone if decision is not None else None,
            query.qtype if query is not None else 0,
            rcode,
            decision.steering if decision is not None else None,
            self._clock() - started,
        )
