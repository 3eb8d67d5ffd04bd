"""The benchmark's query mix, as wire-format queries with per-query ECS.

A, AAAA, SOA, NS and non-existent names under the sample zone, each with an EDNS Client
Subnet option for one of a few thousand real client /24s: random public IPv4 addresses
that the GeoIP database places, drawn with a fixed seed so every run (and every server)
sees the same queries. Written as dnsperf's `-B` input: a stream of two-byte length
prefixed DNS messages.
"""

from __future__ import annotations

import ipaddress
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
