"""Microseconds per query of `Responder.handle_wire`, without sockets (for profiling).

    .venv/bin/python bench/dns/micro.py [--queries 200000] [--networks 5000] [--profile]
    .venv/bin/python bench/dns/micro.py --misses 50000       # what a cache miss costs
    .venv/bin/python bench/dns/micro.py --networks 1000000 --zipf 1.1 --queries 1000000

The same mix as the dnsperf benchmark (bench/dns/queries.py) over the sample zones/ with
the GeoLite2-City database of maxminddb-geolite2. The first pass warms the caches; the
second is timed (and profiled with --profile).

`--misses N` times what a resolver's new client costs instead: after the warm-up, N
`www` A queries each from a client /24 not asked from before (the answer for its
region ranking is cached, the client is not: a GeoIP lookup and what the cache does with
it), then the same N queries by the full path alone (decode, select, encode).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import sys
import time
from ipaddress import IPv4Network
from pathlib import Path

import dns.edns
import dns.message

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from queries import client_networks, queries, zipf_queries  # noqa: E402

from gslb.config import load_config  # noqa: E402
from gslb.dns.answers import AnswerCache  # noqa: E402
from gslb.dns.responder import Responder  # noqa: E402
from gslb.geo import GeoDatabase  # noqa: E402
from gslb.metrics import DnsStats  # noqa: E402
from gslb.plan import compile_plan  # noqa: E402
from gslb.state import State, View  # noqa: E402


def geolite2_path() -> str:
    import geolite2  # type: ignore[import-untyped]

    site = Path(geolite2.__file__).parent
    return str(site / "_maxminddb_geolite2" / "GeoLite2-City.mmdb")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--networks", type=int, default=5000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-ecs", action="store_true")
    parser.add_argument("--metrics", action="store_true", help="observe with gslb's DnsStats")
    parser.add_argument("--refresh-every", type=int, default=100)
    parser.add_argument("--misses", type=int, default=0, help="time N new client networks")
    parser.add_argument("--zipf", type=float, default=0.0, help="networks' Zipf exponent")
    args = parser.parse_args()
    db = geolite2_path()
    view = View(compile_plan(load_config(str(ROOT / "zones"))), State())
    geo = GeoDatabase(db)
    responder = Responder(
        lambda: view,
        geo,
        rng=random.Random(1),
        observer=DnsStats() if args.metrics else None,
        cache=AnswerCache(refresh_every=args.refresh_every),
    )
    nets = client_networks(db, args.networks)
    if args.zipf:
        wires = list(zipf_queries(nets, args.queries, args.zipf))
    else:
        wires = [q.to_wire() for q in queries(nets, args.queries, ecs=not args.no_ecs)]
    handle = responder.handle_wire
    for wire in wires:
        handle(wire, "192.0.2.1", False)
    # As `gslb serve` does every 10 s (gslb/dns/loop.py): the caches out of the collector's way.
    gc.collect()
    gc.freeze()
    if args.misses:
        misses(responder, db, nets, args.misses, args.profile)
        return
    profiler = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    for wire in wires:
        handle(wire, "192.0.2.1", False)
    if profiler is not None:
        profiler.disable()
    elapsed = time.perf_counter() - started
    print(f"{elapsed / len(wires) * 1e6:.2f} us/query ({len(wires) / elapsed:,.0f} q/s)")
    cache = responder.cache
    print(
        f"cache: {cache.hits} hits, {cache.fills} fills, {cache.size} answers, "
        f"{len(cache.clients)} clients, {len(cache.queries)} queries"
    )
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


def misses(responder: Responder, db: str, seen: list[IPv4Network], n: int, profile: bool) -> None:
    """µs per query from a client network not seen before, then by the full path alone."""
    old = set(seen)
    fresh = [net for net in client_networks(db, n + len(old), seed=8) if net not in old][:n]
    wires = []
    for net in fresh:
        query = dns.message.make_query(
            "www.gslb.example.com.", "A", use_edns=0, payload=1232,
            options=[dns.edns.ECSOption(str(net.network_address), 24)],
        )  # fmt: skip
        query.flags = 0
        wires.append(query.to_wire())
    for label, answer in (("new client", responder.handle_wire), ("full path", None)):
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        for wire in wires:
            if answer is None:
                responder.answer_full(wire, "192.0.2.1")
            else:
                answer(wire, "192.0.2.1", False)
        if profiler is not None:
            profiler.disable()
        elapsed = time.perf_counter() - started
        print(f"{label}: {elapsed / len(wires) * 1e6:.2f} us/query over {len(wires):,} networks")
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
