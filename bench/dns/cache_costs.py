"""Bytes per entry of each answer-cache table, measured with tracemalloc: the figures that
gslb/dns/cache_costs.py uses as per-entry overheads.

    .venv/bin/python bench/dns/cache_costs.py [--entries 20000]

Each table is filled with distinct entries the way the query path fills it (parsed
queries from real query bytes, client entries from real ECS options, answers from
full-path replies), and what tracemalloc saw allocated is set against the bytes the
cache counts for them: the difference per entry is the overhead to charge.
"""

from __future__ import annotations

import argparse
import random
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import dns.edns
import dns.message

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from gslb.config import load_config  # noqa: E402
from gslb.dns import cache_costs  # noqa: E402
from gslb.dns.answers import AnswerCache, tallied_variant  # noqa: E402
from gslb.dns.codec import decode_query, encode_parts  # noqa: E402
from gslb.dns.fastparse import parse_query  # noqa: E402
from gslb.dns.responder import Responder  # noqa: E402
from gslb.geo import GeoDatabase  # noqa: E402
from gslb.plan import compile_plan  # noqa: E402
from gslb.state import State, View  # noqa: E402


def wire(name: str, address: str | None = None) -> bytes:
    options = [] if address is None else [dns.edns.ECSOption(address, 24)]
    query = dns.message.make_query(name, "A", use_edns=0, payload=1232, options=options)
    query.flags = 0
    return query.to_wire()


def allocated(fill: Callable[[], None]) -> int:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fill()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=20_000)
    n = parser.parse_args().entries
    view = View(compile_plan(load_config(str(ROOT / "zones"))), State())
    geo = GeoDatabase(str(ROOT / "geodata" / "demo-city.mmdb"))
    responder = Responder(lambda: view, geo, rng=random.Random(1))
    rng = random.Random(5)
    names = [wire(f"n{i}.gslb.example.com.") for i in range(n)]
    nets = [f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{i % 256}.0" for i in range(n)]
    ecs = [wire("www.gslb.example.com.", net) for net in nets]
    rows = []

    cache = AnswerCache(max_answers=n, max_clients=n, max_bytes=None)
    keys = [w[2:] for w in names]

    def queries() -> None:
        for w, key in zip(names, keys, strict=True):
            p = parse_query(w)
            assert p is not None
            cache.add_query(key, p)

    rows.append(("queries", allocated(queries), cache.queries))

    parsed = [parse_query(w) for w in names]

    def questions() -> None:
        for p in parsed:
            assert p is not None
            cache.question(p)

    rows.append(("questions", allocated(questions), cache.questions))

    responder.cache.sync(view.plan, view.state)
    clients = responder.cache
    options = [parse_query(w) for w in ecs]

    def client_entries() -> None:
        for p in options:
            assert p is not None and p.ecs is not None
            responder._client(p, "192.0.2.1", view)

    rows.append(("clients", allocated(client_entries), clients.clients))

    replies = []
    for w in names[: min(n, 2000)]:
        query = decode_query(w)
        decision = responder.decide(query, "192.0.2.1", view)
        sections = (decision.answer, decision.authority, decision.additional)
        parts = encode_parts(
            query, decision.rcode, decision.authoritative, sections, udp_cap=responder.udp_cap
        )
        p = parse_query(w)
        assert p is not None
        replies.append((p.key, tallied_variant(parts, decision, 1)))
    answers = AnswerCache(max_answers=n, max_clients=n, max_bytes=None)
    answers.sync(view.plan, view.state)

    def entries() -> None:
        for i in range(n):
            key, found = replies[i % len(replies)]
            answers.store(answers.static, (key, i), found)

    rows.append(("answers", allocated(entries), answers.static))
    many = AnswerCache(max_answers=n, max_clients=n, max_bytes=None, variants=16)
    many.sync(view.plan, view.state)

    def variants() -> None:
        for i in range(n):
            key, found = replies[(i // 16) % len(replies)]
            many.store(many.static, (key, i // 16), found)

    rows.append(("answers of 16 variants", allocated(variants), many.static))

    print("| table | entries | allocated B/entry | counted B/entry | overhead now | measured |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, total, table in rows:
        count = len(table)
        counted = (table.bytes - table.overhead * count) / count
        print(
            f"| {name} | {count:,} | {total / count:.0f} | {counted:.0f} | {table.overhead} | "
            f"{total / count - counted:.0f} |"
        )
    one, sixteen = rows[-2][1] / len(rows[-2][2]), rows[-1][1] / len(rows[-1][2])
    per_variant = (sixteen - one) / 15
    print(
        f"answers: {per_variant:.0f} B per variant beyond the first, "
        f"{one - per_variant:.0f} B per entry besides its variants"
    )
    print(
        f"answers: counted includes Variant {cache_costs.VARIANT} per variant; "
        f"overhead now = Entry {cache_costs.ENTRY}"
    )


if __name__ == "__main__":
    main()
