"""Every table the query path fills stays within the configured size, over real sockets."""

from __future__ import annotations

from pathlib import Path

import dns.edns
import dns.message
import dns.query

from gslb.config import load_config
from gslb.dns.answers import AnswerCache
from gslb.dns.responder import Responder
from gslb.plan import compile_plan
from gslb.state import State, View
from tests.conftest import write_config
from tests.dns_inprocess import serving

ZONE = """
zone: gslb.example.com
soa: {mname: ns1.gslb.example.com, rname: hostmaster.example.com, minimum: 60}
ns: [ns1.gslb.example.com]
records:
  ns1: {A: [192.0.2.53]}
  www: {A: [192.0.2.54]}
"""
BOUND = 40


def table_sizes(cache: AnswerCache) -> dict[str, int]:
    return {
        "questions": len(cache.questions),
        "answers": len(cache.static) + len(cache.steered),
        "variants": cache.size,
        "queries": len(cache.queries),
        "clients": len(cache.clients),
        "rankings": len(cache.rankings),
        "shared": len(cache._shared) // 2,
        "tallies": len(cache._tallies),
    }


def test_many_distinct_names_never_grow_a_table_past_its_bound(tmp_path: Path) -> None:
    directory = write_config(tmp_path, {"gslb.example.com.yaml": ZONE})
    view = View(compile_plan(load_config(str(directory))), State())
    cache = AnswerCache(max_answers=BOUND, max_clients=BOUND)
    responder = Responder(lambda: view, None, cache=cache)
    with serving(responder) as port:
        for i in range(400):
            name = f"n{i}.missing.gslb.example.com"
            option = dns.edns.ECSOption(f"198.{i % 200}.{i // 200}.0", 24)
            query = dns.message.make_query(name, "A", use_edns=0, options=[option])
            reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=3)
            assert reply.rcode() == 3
            sizes = table_sizes(cache)
            assert max(sizes.values()) <= BOUND, sizes
        # The tables were filled past their bound many times (the answer itself is one:
        # names that do not exist share their zone's).
        tables = (cache.questions, cache.queries, cache.clients)
        assert min(table.evictions for table in tables) > BOUND


def test_tcp_queries_are_answered_from_the_cache_and_axfr_never_is(tmp_path: Path) -> None:
    # TCP answers are the UDP ones, never truncated: TCP took the full path for every
    # query (~10x the cost), so four pipelining connections held UDP up for milliseconds.
    directory = write_config(tmp_path, {"gslb.example.com.yaml": ZONE})
    view = View(compile_plan(load_config(str(directory))), State())
    cache = AnswerCache()
    responder = Responder(lambda: view, None, cache=cache)
    with serving(responder) as port:
        query = dns.message.make_query("www.gslb.example.com", "A")
        first = dns.query.tcp(query, "127.0.0.1", port=port, timeout=3)
        hits = cache.hits
        for _ in range(20):
            again = dns.query.tcp(query, "127.0.0.1", port=port, timeout=3)
            assert again.answer == first.answer
        assert cache.hits >= hits + 20
        # A zone transfer is answered by transport, so never from what the other one got.
        axfr = dns.message.make_query("gslb.example.com", "AXFR")
        assert dns.query.udp(axfr, "127.0.0.1", port=port, timeout=3).rcode() == 4  # NOTIMP
        assert dns.query.tcp(axfr, "127.0.0.1", port=port, timeout=3).rcode() == 5  # REFUSED
