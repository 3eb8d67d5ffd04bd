"""Geographic steering end to end: a real `gslb serve` with the shipped zones/ and the
demo GeoIP database, asked over UDP by dnspython with EDNS Client Subnet from several
continents and both address families."""

from __future__ import annotations

import ipaddress

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import Served

HOST = "127.0.0.1"
WWW = "www.gslb.example.com."

US_EAST = {"192.0.2.10", "192.0.2.11", "2001:db8:a::10"}
EU_WEST = {"198.51.100.10", "198.51.100.11", "2001:db8:e::10"}
AP_SOUTHEAST = {"203.0.113.10", "203.0.113.11", "2001:db8:5::10"}


def ask(
    server: Served,
    name: str,
    rdtype: str,
    subnet: str | None = None,
    option: dns.edns.Option | None = None,
) -> dns.message.Message:
    options: list[dns.edns.Option] = []
    if subnet is not None:
        network = ipaddress.ip_network(subnet)
        options.append(dns.edns.ECSOption(str(network.network_address), network.prefixlen))
    if option is not None:
        options.append(option)
    query = dns.message.make_query(name, rdtype, use_edns=0, options=options)
    return dns.query.udp(query, HOST, port=server.dns_port, timeout=3)


def answers(reply: dns.message.Message) -> set[str]:
    return {rd.to_text() for rrset in reply.answer for rd in rrset if rrset.rdtype in (1, 28)}


def ecs_of(reply: dns.message.Message) -> dns.edns.ECSOption:
    found = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
    assert len(found) == 1, reply.options
    return found[0]


# (subnet, family asked, the region's addresses, the longest scope allowed: the db network)
STEERING = [
    ("81.2.69.0/24", "A", EU_WEST, 24),  # London
    ("81.2.69.0/24", "AAAA", EU_WEST, 24),
    ("8.8.8.0/24", "A", US_EAST, 24),  # Mountain View
    ("8.8.8.0/24", "AAAA", US_EAST, 24),
    ("1.1.1.0/24", "A", AP_SOUTHEAST, 24),  # Brisbane
    ("1.1.1.0/24", "AAAA", AP_SOUTHEAST, 24),
    ("77.88.8.0/24", "A", EU_WEST, 24),  # Moscow
    ("114.114.114.0/24", "A", AP_SOUTHEAST, 24),  # Nanjing
    ("196.216.2.0/24", "A", EU_WEST, 24),  # Ebène, Mauritius: Africa is mapped to eu-west
    ("200.160.2.0/24", "A", US_EAST, 20),  # São Paulo: the db network is a /20
    ("2001:4860::/32", "AAAA", US_EAST, 32),  # Google's IPv6 block
    ("2001:4860::/32", "A", US_EAST, 32),
    ("2a02:6b8::/32", "AAAA", EU_WEST, 32),  # Yandex
    ("2001:dc3::/32", "AAAA", AP_SOUTHEAST, 32),  # M-root, Tokyo
    ("2001:dc3::/32", "A", AP_SOUTHEAST, 32),
    ("2001:12ff::/32", "AAAA", US_EAST, 32),  # NIC.br
    ("2620:fe::/56", "AAAA", EU_WEST, 48),  # Quad9, Zurich: a /48 in the db
    ("2001:67c:2e8::/48", "A", EU_WEST, 48),  # RIPE NCC, Amsterdam
]


@pytest.mark.parametrize(
    ("subnet", "rdtype", "region", "longest"), STEERING, ids=[f"{s}-{t}" for s, t, *_ in STEERING]
)
def test_clients_get_their_nearest_region_with_a_bounded_scope(
    sample_server: Served, subnet: str, rdtype: str, region: set[str], longest: int
) -> None:
    reply = ask(sample_server, WWW, rdtype, subnet)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    got = answers(reply)
    assert got and got <= region
    family = 4 if rdtype == "A" else 6
    assert all(ipaddress.ip_address(a).version == family for a in got)
    (rrset,) = reply.answer
    assert rrset.ttl == 30
    assert len(rrset) <= 2  # answers: 2
    ecs = ecs_of(reply)
    network = ipaddress.ip_network(subnet)
    assert ecs.srclen == network.prefixlen
    assert ipaddress.ip_address(ecs.address) == network.network_address
    # The decision depended on the db network (geo) and no more: scope = min(source, db).
    assert ecs.scopelen == min(network.prefixlen, longest)


def test_weighted_answers_follow_the_weights_from_one_network(sample_server: Served) -> None:
    """eu-west weighs 198.51.100.10 at 3 and .11 at 1: the first address drawn leads, 3 to 1,
    across queries from one network too (where the server answers in turn from 128 stored
    draws, so the share rests on 128 draws: the bound is about 4.4 standard deviations)."""
    leads = {"198.51.100.10": 0, "198.51.100.11": 0}
    n = 2000
    for _ in range(n):
        reply = ask(sample_server, WWW, "A", "81.2.69.0/24")
        (rrset,) = reply.answer
        assert {rd.to_text() for rd in rrset} == set(leads)  # answers: 2, without repetition
        leads[rrset[0].to_text()] += 1
    assert 0.58 < leads["198.51.100.10"] / n < 0.92, leads


def test_source_prefix_zero_gets_scope_zero(sample_server: Served) -> None:
    reply = ask(sample_server, WWW, "A", "0.0.0.0/0")
    assert reply.rcode() == dns.rcode.NOERROR
    # The resolver's own address (loopback) has no location: the default order's first.
    assert answers(reply) and answers(reply) <= US_EAST
    ecs = ecs_of(reply)
    assert (ecs.srclen, ecs.scopelen) == (0, 0)
    v6 = ask(sample_server, WWW, "AAAA", "::/0")
    assert ecs_of(v6).scopelen == 0 and answers(v6) <= US_EAST


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        ("ns1.gslb.example.com.", "A"),
        ("ns1.gslb.example.com.", "AAAA"),
        ("gslb.example.com.", "MX"),
        ("gslb.example.com.", "SOA"),
        ("nothing.gslb.example.com.", "A"),
    ],
)
def test_static_names_get_scope_zero(sample_server: Served, name: str, rdtype: str) -> None:
    reply = ask(sample_server, name, rdtype, "81.2.69.0/24")
    assert reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
    ecs = ecs_of(reply)
    assert (ecs.srclen, ecs.scopelen) == (24, 0)


def test_a_failover_service_does_not_depend_on_the_client(sample_server: Served) -> None:
    for subnet in ("81.2.69.0/24", "1.1.1.0/24", "2001:dc3::/32"):
        reply = ask(sample_server, "api.gslb.example.com.", "A", subnet)
        assert answers(reply) == {"192.0.2.20"}
        assert ecs_of(reply).scopelen == 0


def test_an_alias_of_a_service_is_steered(sample_server: Served) -> None:
    reply = ask(sample_server, "docs.gslb.example.com.", "A", "1.1.1.0/24")
    assert reply.answer[0].rdtype == dns.rdatatype.CNAME
    assert answers(reply) <= AP_SOUTHEAST and answers(reply)
    assert ecs_of(reply).scopelen == 24


def test_without_ecs_the_resolver_address_decides(sample_server: Served) -> None:
    reply = ask(sample_server, WWW, "A")
    assert answers(reply) <= US_EAST  # loopback: unknown, the default order
    assert not [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]


def raw_ecs(family: int, source: int, scope: int, address: bytes) -> dns.edns.GenericOption:
    """An ECS option exactly as given, bypassing dnspython's own masking."""
    data = family.to_bytes(2, "big") + bytes([source, scope]) + address
    return dns.edns.GenericOption(dns.edns.OptionType.ECS, data)


MALFORMED = [
    ("bits beyond the source prefix", raw_ecs(1, 20, 0, bytes([81, 2, 69]))),
    ("IPv6 bits beyond the prefix", raw_ecs(2, 31, 0, bytes([0x20, 0x01, 0x48, 0x61]))),
    ("unknown family", raw_ecs(3, 24, 0, bytes([81, 2, 69]))),
    ("IPv4 source longer than 32", raw_ecs(1, 33, 0, bytes([81, 2, 69, 142, 0]))),
    ("IPv6 source longer than 128", raw_ecs(2, 129, 0, bytes(17))),
    ("address longer than the prefix", raw_ecs(1, 16, 0, bytes([81, 2, 69]))),
    ("address shorter than the prefix", raw_ecs(1, 24, 0, bytes([81, 2]))),
    ("too short to hold a header", dns.edns.GenericOption(dns.edns.OptionType.ECS, b"\x00\x01")),
]


@pytest.mark.parametrize(("what", "option"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_ecs_is_formerr_and_the_server_keeps_serving(
    sample_server: Served, what: str, option: dns.edns.GenericOption
) -> None:
    reply = ask(sample_server, WWW, "A", option=option)
    assert reply.rcode() == dns.rcode.FORMERR
    assert not reply.answer
    after = ask(sample_server, WWW, "A", "81.2.69.0/24")
    assert after.rcode() == dns.rcode.NOERROR
    assert answers(after) <= EU_WEST and answers(after)
    assert sample_server.process.poll() is None
