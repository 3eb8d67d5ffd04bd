"""Wire behaviour as Knot and NSD show it, over real sockets with dnspython: names compared
label by label, DS at a delegation from the parent side, odd labels as ordinary labels,
QCLASS ANY, TSIG without the key, zone transfers, compression against the question."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import pytest

from tests.conftest import Served, start_serve, write_config

HOST = "127.0.0.1"
ZONE = """
zone: gslb.example.com
soa: {mname: ns1.gslb.example.com, rname: hostmaster.example.com, minimum: 60}
ns: [ns1.gslb.example.com, ns2.gslb.example.com]
records:
  ns1: {A: [192.0.2.53]}
  ns2: {A: [192.0.2.54]}
  host.mail: {A: [192.0.2.60]}
  sub: {NS: [ns.sub.gslb.example.com.]}
  ns.sub: {A: [192.0.2.99]}
services:
  www: {ttl: 30, policy: failover, select: all, answers: 4, regions: [r1]}
"""
TEST_ZONE = """
zone: example.test
soa: {mname: ns1.example.test, rname: hostmaster.example.test, minimum: 60}
ns: [ns1.example.test]
records:
  ns1: {A: [203.0.113.1]}
"""
REGION = """
region: r1
location: {lat: 50, lon: 8}
services:
  www.gslb.example.com: [192.0.2.10, 192.0.2.11]
"""


@pytest.fixture(scope="module", params=["batched", "per-datagram"])
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("knotwire")
    write_config(
        directory,
        {
            "gslb.yaml": "{}\n",
            "gslb.example.com.yaml": ZONE,
            "example.test.yaml": TEST_ZONE,
            "regions/r1.yaml": REGION,
        },
    )
    served = start_serve(
        directory, env={"GSLB_UDP_BATCH": "0"} if request.param != "batched" else {}
    )
    yield served
    served.stop()


def udp(server: Served, query: dns.message.Message) -> dns.message.Message:
    return dns.query.udp(query, HOST, port=server.dns_port, timeout=3)


def tcp(server: Served, query: dns.message.Message) -> dns.message.Message:
    return dns.query.tcp(query, HOST, port=server.dns_port, timeout=3)


def raw_udp(server: Served, payload: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(payload, (HOST, server.dns_port))
        return sock.recv(65535)


def names(message: dns.message.Message, section: str = "answer") -> set[str]:
    return {f"{r.name} {dns.rdatatype.to_text(r.rdtype)}" for r in getattr(message, section)}


def test_a_dot_inside_a_label_is_not_a_label_boundary(server: Served) -> None:
    plain = udp(server, dns.message.make_query("www.gslb.example.com", "A"))
    assert plain.answer
    # One label "www.gslb" under example.com: not a name of ours.
    odd = dns.name.Name([b"www.gslb", b"example", b"com", b""])
    for _ in range(2):  # the second time from the cache
        reply = udp(server, dns.message.make_query(odd, "A"))
        assert reply.rcode() == dns.rcode.REFUSED
        assert not reply.answer
        assert reply.question[0].name == odd
    # One label "host.mail" under our zone: a name that does not exist, unlike host.mail.
    assert udp(server, dns.message.make_query("host.mail.gslb.example.com", "A")).answer
    odd = dns.name.Name([b"host.mail", b"gslb", b"example", b"com", b""])
    for _ in range(2):
        reply = udp(server, dns.message.make_query(odd, "A"))
        assert reply.rcode() == dns.rcode.NXDOMAIN
        assert reply.flags & dns.flags.AA
        assert not reply.answer
        assert reply.question[0].name == odd
    outside = dns.name.Name([b"example.test", b""])
    reply = udp(server, dns.message.make_query(outside, "SOA"))
    assert reply.rcode() == dns.rcode.REFUSED
    assert not reply.answer
    assert udp(server, dns.message.make_query("example.test", "SOA")).answer


def test_a_label_of_bytes_that_are_not_utf8_is_an_ordinary_label(server: Served) -> None:
    odd = dns.name.Name([b"\xff\xfe\x80", b"gslb", b"example", b"com", b""])
    for _ in range(2):
        reply = udp(server, dns.message.make_query(odd, "A"))
        assert reply.rcode() == dns.rcode.NXDOMAIN
        assert reply.flags & dns.flags.AA
        assert names(reply, "authority") == {"gslb.example.com. SOA"}


def test_qclass_any_is_answered_like_in(server: Served) -> None:
    query = dns.message.make_query("ns1.gslb.example.com", "A", rdclass=dns.rdataclass.ANY)
    for _ in range(2):
        reply = udp(server, query)
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.question[0].rdclass == dns.rdataclass.ANY
        assert [rd.to_text() for rrset in reply.answer for rd in rrset] == ["192.0.2.53"]
        assert reply.answer[0].rdclass == dns.rdataclass.IN


def test_tsig_with_a_key_we_do_not_have_gets_notauth_badkey(server: Served) -> None:
    keyring = dns.tsigkeyring.from_text({"client-key.": "c2VjcmV0c2VjcmV0c2VjcmV0"})
    query = dns.message.make_query("ns1.gslb.example.com", "A")
    query.use_tsig(keyring, keyname="client-key.")
    for send in (udp, tcp):
        with pytest.raises(dns.tsig.PeerBadKey):
            send(server, query)
    reply = dns.message.from_wire(raw_udp(server, query.to_wire()), keyring=False)
    assert reply.rcode() == dns.rcode.NOTAUTH
    assert reply.tsig_error == dns.rcode.BADKEY
    assert not reply.answer
    assert reply.question == query.question


def test_zone_transfers_notimp_over_udp_notauth_outside_our_zones(server: Served) -> None:
    for rdtype in ("AXFR", "IXFR"):
        reply = udp(server, dns.message.make_query("gslb.example.com", rdtype))
        assert reply.rcode() == dns.rcode.NOTIMP
        assert not reply.answer
        outside = tcp(server, dns.message.make_query("elsewhere.example.", rdtype))
        assert outside.rcode() == dns.rcode.NOTAUTH
        inside = tcp(server, dns.message.make_query("gslb.example.com", rdtype))
        assert inside.rcode() == dns.rcode.REFUSED


def test_ds_at_a_delegation_is_answered_by_the_parent(server: Served) -> None:
    for _ in range(2):
        reply = udp(server, dns.message.make_query("sub.gslb.example.com", "DS"))
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.flags & dns.flags.AA
        assert not reply.answer
        assert names(reply, "authority") == {"gslb.example.com. SOA"}
    below = udp(server, dns.message.make_query("host.sub.gslb.example.com", "DS"))
    assert not below.flags & dns.flags.AA  # below the cut: still a referral
    assert names(below, "authority") == {"sub.gslb.example.com. NS"}
    other = udp(server, dns.message.make_query("sub.gslb.example.com", "A"))
    assert names(other, "authority") == {"sub.gslb.example.com. NS"}


@pytest.mark.parametrize("qname", ["gslb.example.com", "GsLb.ExAmPlE.CoM", "ns1.gslb.example.com"])
def test_replies_compress_against_the_question(server: Served, qname: str) -> None:
    for rdtype in ("NS", "SOA", "A"):
        query = dns.message.make_query(qname, rdtype)
        for _ in range(2):
            wire = raw_udp(server, query.to_wire())
            reply = dns.message.from_wire(wire)
            assert reply.rcode() in (dns.rcode.NOERROR,)
            # dnspython compresses every name against every earlier one, the question too
            assert len(wire) <= len(reply.to_wire()), (rdtype, qname)


def test_knot_sized_reply_for_the_apex_ns(server: Served) -> None:
    wire = raw_udp(server, dns.message.make_query("gslb.example.com", "NS").to_wire())
    header = struct.unpack("!HHHHHH", wire[:12])
    assert header[3] == 2  # two NS records
    assert wire.count(b"\x04gslb\x07example\x03com\x00") == 1  # written once, in the question
