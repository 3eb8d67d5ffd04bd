"""The benchmark's query mix, as wire-format queries with per-query ECS.

A, AAAA, SOA, NS and non-existent names under the sample zone, each with an EDNS Client
Subnet option for one of a few thousand real client /24s: random public IPv4 addresses
that the GeoIP database places, drawn with a fixed seed so every run (and every server)
sees the same queries. Written as dnsperf's `-B` input: a stream of two-byte length
prefixed DNS messages.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import random
import struct
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.message
import maxminddb

ZONE = "gslb.example.com."
# (name, type, share of the mix); "nx" names get a fresh random label each time.
MIX: tuple[tuple[str, str, int], ...] = (
    ("www", "A", 40),
    ("www", "AAAA", 15),
    ("@", "SOA", 10),
    ("@", "NS", 10),
    ("ns1", "A", 5),
    ("api", "A", 5),
    ("nx", "A", 15),
)


def client_networks(db_path: str, count: int, seed: int = 6) -> list[ipaddress.IPv4Network]:
    """`count` distinct /24s of random public addresses that the database places."""
    rng = random.Random(seed)
    out: dict[ipaddress.IPv4Network, None] = {}
    with maxminddb.open_database(db_path) as reader:
        while len(out) < count:
            address = ipaddress.IPv4Address(rng.getrandbits(32))
            if not address.is_global or address.is_multicast:
                continue
            record = reader.get(address)
            if not isinstance(record, dict) or "location" not in record:
                continue
            out[ipaddress.IPv4Network(f"{address}/24", strict=False)] = None
    return list(out)


def queries(
    networks: list[ipaddress.IPv4Network], total: int, seed: int = 6, ecs: bool = True
) -> Iterator[dns.message.Message]:
    rng = random.Random(seed)
    names = [m[0] for m in MIX]
    types = [m[1] for m in MIX]
    weights = [m[2] for m in MIX]
    for _ in range(total):
        i = rng.choices(range(len(MIX)), weights)[0]
        label = names[i]
        if label == "nx":
            name = f"nx{rng.randrange(1_000_000)}.{ZONE}"
        elif label == "@":
            name = ZONE
        else:
            name = f"{label}.{ZONE}"
        options: list[dns.edns.Option] = []
        if ecs:
            net = rng.choice(networks)
            options.append(dns.edns.ECSOption(str(net.network_address), 24))
        query = dns.message.make_query(name, types[i], use_edns=0, payload=1232, options=options)
        query.flags = 0  # an authoritative server is asked without RD
        yield query


def write_stream(path: Path, messages: Iterator[dns.message.Message]) -> int:
    """dnsperf -B input: each message as a two-byte length and its wire form."""
    count = 0
    with path.open("wb") as out:
        for message in messages:
            wire = message.to_wire()
            out.write(struct.pack("!H", len(wire)) + wire)
            count += 1
    return count


# --- query sets like a large resolver's ------------------------------------------------

QTYPES = {"A": 1, "AAAA": 28, "SOA": 6, "NS": 2}


def zipf_ranks(population: int, total: int, s: float, seed: int) -> Iterator[int]:
    """`total` draws of a rank in [0, population) with P(rank k) ∝ 1 / (k + 1) ** s."""
    cumulative = list(itertools.accumulate(1.0 / (k**s) for k in range(1, population + 1)))
    top = cumulative[-1]
    rng = random.Random(seed)
    for _ in range(total):
        yield min(population - 1, bisect.bisect(cumulative, rng.random() * top))


def _qname(name: str) -> bytes:
    return (
        b"".join(bytes((len(label),)) + label.encode() for label in name.rstrip(".").split("."))
        + b"\x00"
    )


def _ecs_query(qid: int, qname: bytes, qtype: int, network: bytes) -> bytes:
    """An EDNS query (payload 1232, no RD) with ECS for the /24 whose first three octets
    are `network`: the bytes dnspython's make_query + to_wire give, written by hand since
    millions are made."""
    return b"".join(
        (
            struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1),
            qname,
            struct.pack("!HH", qtype, 1),
            b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x0b\x00\x08\x00\x07\x00\x01\x18\x00",
            network,
        )
    )


def zipf_queries(
    networks: list[ipaddress.IPv4Network], total: int, s: float = 1.1, seed: int = 6
) -> Iterator[bytes]:
    """The mix of `queries()` as wire, each query's ECS /24 drawn with Zipf popularity:
    `networks[k]` asks with weight 1 / (k + 1) ** s. `networks` comes from
    `client_networks`, random over the database, so the popular ones are on every
    continent. Same seed, same bytes."""
    rng = random.Random(seed)
    weights = [m[2] for m in MIX]
    fixed = {
        i: _qname(ZONE if label == "@" else f"{label}.{ZONE}")
        for i, (label, _, _) in enumerate(MIX)
        if label != "nx"
    }
    packed = [net.network_address.packed[:3] for net in networks]
    for rank in zipf_ranks(len(networks), total, s, seed + 1):  # see distinct_networks
        i = rng.choices(range(len(MIX)), weights)[0]
        qname = fixed.get(i) or _qname(f"nx{rng.randrange(1_000_000)}.{ZONE}")
        yield _ecs_query(rng.randrange(65536), qname, QTYPES[MIX[i][1]], packed[rank])


def distinct_networks(population: int, total: int, s: float = 1.1, seed: int = 6) -> int:
    """How many of the networks `zipf_queries(..., seed=seed)` asks from."""
    return len(set(zipf_ranks(population, total, s, seed + 1)))


def continent_shares(
    db_path: str, networks: list[ipaddress.IPv4Network], s: float
) -> dict[str, float]:
    """Each continent's expected share of the queries of `zipf_queries(networks, s=s)`."""
    shares: dict[str, float] = {}
    with maxminddb.open_database(db_path) as reader:
        for k, net in enumerate(networks, 1):
            record = reader.get(net.network_address)
            continent = "?"
            if isinstance(record, dict) and isinstance(record.get("continent"), dict):
                continent = str(record["continent"].get("code", "?"))
            shares[continent] = shares.get(continent, 0.0) + 1.0 / k**s
    total = sum(shares.values())
    return {c: v / total for c, v in sorted(shares.items(), key=lambda kv: -kv[1])}


def write_wires(path: Path, wires: Iterator[bytes]) -> int:
    """dnsperf -B input from wire-format queries."""
    count = 0
    with path.open("wb") as out:
        for wire in wires:
            out.write(struct.pack("!H", len(wire)) + wire)
            count += 1
    return count
