"""Lookups per second of gslb.geo.GeoDatabase: cached, uncached, and skipped addresses.

Run from the repository root:

    .venv/bin/python bench/geo_lookup.py                  # the demo database
    .venv/bin/python bench/geo_lookup.py --db geolite2    # maxminddb-geolite2's, if installed
    .venv/bin/python bench/geo_lookup.py --db PATH.mmdb

"spread" looks up random public IPv4 addresses: the first pass fills the cache with many
networks of many prefix lengths (a real database), the timed passes then hit it.
"uncached" uses a cache of one network and alternates between addresses of different
networks, so every lookup reads and decodes a database record; "raw reader" is
maxminddb's own `get_with_prefix_len` on the same addresses, for comparison.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import maxminddb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from gslb.geo import GeoDatabase  # noqa: E402

# Addresses in distinct networks of both the demo database and a GeoLite2 database.
V4 = ["81.2.69.142", "8.8.8.8", "1.1.1.1", "9.9.9.9", "77.88.8.8", "202.12.27.33"]
V6 = ["2001:4860:4860::8888", "2606:4700:4700::1111", "2001:7fd::1", "2001:dc3::35"]


def rate(run: Callable[[], None], calls: int, repeat: int = 5) -> float:
    """Best calls per second over `repeat` runs of `run`, which makes `calls` lookups."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return calls / best


def loop(lookup: Callable[[Any], object], addresses: Sequence[Any], rounds: int) -> float:
    def run() -> None:
        for _ in range(rounds):
            for address in addresses:
                lookup(address)

    return rate(run, rounds * len(addresses))


def database_path(name: str) -> str:
    if name == "demo":
        return str(ROOT / "geodata" / "demo-city.mmdb")
    if name == "geolite2":
        from _maxminddb_geolite2 import (  # type: ignore[import-untyped]  # maxminddb-geolite2
            geolite2_database,
        )

        return str(geolite2_database())
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GeoDatabase lookups per second")
    parser.add_argument("--db", default="demo", help="demo, geolite2, or a path to an .mmdb")
    parser.add_argument("--rounds", type=int, default=20_000, help="passes over the addresses")
    parser.add_argument("--spread", type=int, default=20_000, help="random addresses to spread")
    args = parser.parse_args(argv)
    path = database_path(args.db)
    rounds = args.rounds
    few = max(1, rounds // 20)  # misses are slower: fewer of them
    results: list[tuple[str, float]] = []

    with GeoDatabase(path) as db:
        for address in V4 + V6:
            db.lookup(address)  # warm the cache
        results.append(("cached IPv4 text", loop(db.lookup, V4, rounds)))
        results.append(("cached IPv6 text", loop(db.lookup, V6, rounds)))
        objects = [ipaddress.ip_address(a) for a in V4 + V6]
        results.append(("cached address objects", loop(db.lookup, objects, rounds)))
        private = ["10.1.2.3", "192.168.0.1", "127.0.0.1", "fd00::1"]
        results.append(("skipped (private)", loop(db.lookup, private, rounds)))
        assert db.cache_info().misses == len(V4 + V6), "cached runs must not miss"

    with GeoDatabase(path) as db:
        rng = random.Random(53)
        spread = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(args.spread)]
        start = time.perf_counter()
        found = [db.lookup(address) for address in spread]
        first = len(spread) / (time.perf_counter() - start)
        results.append(("spread: first pass (filling)", first))
        results.append(("spread: cached", loop(db.lookup, spread, max(1, rounds // 2000))))
        info = db.cache_info()
        lengths = len({loc.prefix_len for loc in found if loc is not None})
        note = f"spread: {info.size} networks cached, {lengths} prefix lengths among those placed"

    with GeoDatabase(path, cache_size=1) as db:
        results.append(("uncached IPv4 text", loop(db.lookup, V4, few)))
        results.append(("uncached IPv6 text", loop(db.lookup, V6, few)))
        info = db.cache_info()
        assert info.hits == 0, "uncached runs must not hit"
        database_type = db.database_type
    with maxminddb.open_database(path, maxminddb.MODE_AUTO) as raw:
        results.append(("raw reader get_with_prefix_len", loop(raw.get_with_prefix_len, V4, few)))

    print(f"database: {path} ({database_type})")
    for name, per_second in results:
        print(f"  {name:32} {per_second:>12,.0f} lookups/s  {1e6 / per_second:8.2f} µs each")
    print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
