"""Hostile DNS input over real sockets: one bad packet costs only itself, malformed
options get FORMERR, error replies echo the question, metric labels stay bounded."""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import time
import urllib.request
from collections.abc import Iterator

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import pytest

from tests.conftest import Served, start_serve, write_config

HOST = "127.0.0.1"
ZONE = """
zone: gslb.example.com
ttl: 300
soa: {mname: ns1.gslb.example.com, rname: hostmaster.example.com, serial: 7,
      refresh: 3600, retry: 600, expire: 604800, minimum: 60}
ns: [ns1.gslb.example.com]
records:
  ns1: {A: [192.0.2.53]}
  "www.gslb": {A: [192.0.2.77]}
  sub: {NS: [ns.sub.gslb.example.com.]}
  ns.sub: {A: [192.0.2.99]}
services:
  www: {ttl: 30, policy: failover, select: all, answers: 4, regions: [r1]}
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
    directory = tmp_path_factory.mktemp("hostile")
    write_config(
        directory,
        {"gslb.yaml": "{}\n", "gslb.example.com.yaml": ZONE, "regions/r1.yaml": REGION},
    )
    served = start_serve(
        directory,
        env={"GSLB_UDP_BATCH": "0"} if request.param != "batched" else {},
        stderr_path=directory / "serve.log",
    )
    yield served
    served.stop()


def raw_udp(server: Served, payload: bytes, timeout: float = 2.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(payload, (HOST, server.dns_port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def long_name_query(qid: int) -> bytes:
    """A query whose name is 256 octets on the wire (the limit is 255)."""
    labels = b"".join(bytes([63]) + b"a" * 63 for _ in range(3)) + bytes([62]) + b"b" * 62
    name = labels + b"\x00"
    assert len(name) == 256
    return struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)


class Paused:
    """The server process stopped, so datagrams queue and are read in one batch later."""

    def __init__(self, server: Served) -> None:
        self.pid = server.process.pid

    def __enter__(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def __exit__(self, *exc: object) -> None:
        os.kill(self.pid, signal.SIGCONT)


def answered_in_one_batch(server: Served, bad: list[bytes], good: int) -> tuple[int, int]:
    """Send `bad` packets among `good` valid queries while the server is paused; count the
    good replies and all replies that parse."""
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(good)]
    others = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in bad]
    try:
        with Paused(server):
            for i, sock in enumerate(clients):
                query = dns.message.make_query("ns1.gslb.example.com", "A", id=i)
                sock.sendto(query.to_wire(), (HOST, server.dns_port))
                if i < len(bad):
                    others[i].sendto(bad[i], (HOST, server.dns_port))
        ok = 0
        waiting = set(clients)
        deadline = time.monotonic() + 3
        while waiting and time.monotonic() < deadline:
            ready, _, _ = select.select(list(waiting), [], [], 0.2)
            for sock in ready:
                waiting.discard(sock)
                reply = dns.message.from_wire(sock.recv(65535))
                if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                    ok += 1
        return ok, good
    finally:
        for sock in clients + others:
            sock.close()


def test_a_bad_query_costs_only_itself(server: Served) -> None:
    ok, good = answered_in_one_batch(server, [long_name_query(7000 + n) for n in range(4)], 60)
    assert ok == good


def test_name_over_255_octets_gets_formerr(server: Served) -> None:
    reply = raw_udp(server, long_name_query(4242))
    assert reply is not None
    message = dns.message.from_wire(reply)
    assert message.id == 4242
    assert message.rcode() == dns.rcode.FORMERR


def server_log(server: Served) -> str:
    return (server.config_dir / "serve.log").read_text()


def question(name: bytes = b"\x03ns1\x04gslb\x07example\x03com\x00", qtype: int = 1) -> bytes:
    return name + struct.pack("!HH", qtype, 1)


def with_opt(qid: int, rdata: bytes, rdlength: int | None = None, flags: int = 0) -> bytes:
    """A query with one OPT record whose RDATA is `rdata` (RDLENGTH as given, or its size)."""
    size = len(rdata) if rdlength is None else rdlength
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, size) + rdata
    return struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 1) + question() + opt


def ecs_option(data: bytes) -> bytes:
    return struct.pack("!HH", 8, len(data)) + data


MALFORMED_ECS = [
    b"",  # zero length
    b"\x00",
    b"\x00\x01",
    b"\x00\x01\x18",  # no scope byte
    b"\x00\x03\x18\x00\xc0\x00\x02",  # family 3
    b"\x00\x01\x21\x00\xc0\x00\x02\x00\x00",  # IPv4 /33
    b"\x00\x02\x81\x00" + bytes(17),  # IPv6 /129
    b"\x00\x01\x18\x00\xc0\x00",  # /24 with 2 address bytes
    b"\x00\x01\x18\x00\xc0\x00\x02\x01",  # /24 with 4 address bytes
    b"\x00\x01\x17\x00\xc0\x00\x03",  # /23 with a bit set beyond the prefix
]


@pytest.mark.parametrize("data", MALFORMED_ECS)
def test_malformed_ecs_gets_formerr_with_question_and_opt(server: Served, data: bytes) -> None:
    for attempt in range(2):  # the second one may take the fast path
        reply = raw_udp(server, with_opt(100 + attempt, ecs_option(data)))
        assert reply is not None
        message = dns.message.from_wire(reply)
        assert message.rcode() == dns.rcode.FORMERR
        assert [str(q.name) for q in message.question] == ["ns1.gslb.example.com."]
        assert message.edns == 0
    assert "Traceback" not in server_log(server)


@pytest.mark.parametrize(
    "rdata,rdlength",
    [
        (ecs_option(b"\x00\x01\x18\x00\xc0\x00\x02")[:-1], None),  # option data cut
        (struct.pack("!HH", 10, 8) + b"abcd", None),  # cookie option claims 8, has 4
        (b"\x00\x0a\x00", None),  # 3 bytes: not even an option header
    ],
)
def test_option_overrunning_rdlength_gets_formerr(
    server: Served, rdata: bytes, rdlength: int | None
) -> None:
    reply = raw_udp(server, with_opt(200, rdata, rdlength))
    assert reply is not None
    message = dns.message.from_wire(reply)
    assert message.rcode() == dns.rcode.FORMERR
    assert message.edns == 0
    assert "Traceback" not in server_log(server)


def test_valid_ecs_is_still_answered(server: Served) -> None:
    option = dns.edns.ECSOption("192.0.2.0", 24)
    query = dns.message.make_query("ns1.gslb.example.com", "A", use_edns=0, options=[option])
    for _ in range(2):
        reply = dns.query.udp(query, HOST, port=server.dns_port, timeout=3)
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.answer


def test_notimp_carries_the_question_and_opt(server: Served) -> None:
    query = dns.message.make_query("ns1.gslb.example.com", "A", use_edns=0)
    query.set_opcode(dns.opcode.STATUS)
    reply = dns.message.from_wire(raw_udp(server, query.to_wire()) or b"")
    assert reply.rcode() == dns.rcode.NOTIMP
    assert reply.question == query.question
    assert reply.edns == 0
    plain = dns.message.make_query("ns1.gslb.example.com", "A")
    plain.set_opcode(dns.opcode.STATUS)
    reply = dns.message.from_wire(raw_udp(server, plain.to_wire()) or b"")
    assert reply.rcode() == dns.rcode.NOTIMP
    assert reply.question == plain.question
    assert reply.edns == -1  # no OPT when the query had none


def test_formerr_for_two_opts_carries_the_question(server: Served) -> None:
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    wire = struct.pack("!HHHHHH", 300, 0, 1, 0, 0, 2) + question() + opt + opt
    message = dns.message.from_wire(raw_udp(server, wire) or b"")
    assert message.rcode() == dns.rcode.FORMERR
    assert [str(q.name) for q in message.question] == ["ns1.gslb.example.com."]
    assert message.edns == 0


def scrape(server: Served) -> str:
    url = f"http://{HOST}:{server.api_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_metric_labels_stay_bounded_under_many_raw_qtypes(server: Served) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(3)
    try:
        qtypes = range(300, 300 + 400)  # none of them a type we know by name
        for qtype in qtypes:
            wire = struct.pack("!HHHHHH", qtype, 0, 1, 0, 0, 0) + question(qtype=qtype)
            sock.sendto(wire, (HOST, server.dns_port))
            sock.recv(65535)  # one at a time: none is lost to a full buffer
        # Names outside our zones (REFUSED) must not make zone labels either.
        for n in range(50):
            query = dns.message.make_query(f"n{n}.elsewhere{n}.test", "A")
            sock.sendto(query.to_wire(), (HOST, server.dns_port))
            sock.recv(65535)
    finally:
        sock.close()
    series = [
        line for line in scrape(server).splitlines() if line.startswith("gslb_dns_queries_total{")
    ]
    assert 0 < len(series) <= 40, series
    assert any('qtype="other"' in line for line in series)
    zones = {line.split('zone="')[1].split('"')[0] for line in series}
    assert zones <= {"", "gslb.example.com."}
