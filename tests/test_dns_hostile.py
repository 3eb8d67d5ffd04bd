"""Hostile and malformed queries over real UDP sockets: each gets a clear, bounded answer
(FORMERR, or nothing), costs no other client its answer, and logs at most a line per kind."""

from __future__ import annotations

import os
import signal
import socket
import struct
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.opcode
import dns.rcode
import pytest

from tests.conftest import Served, copy_sample, start_serve

HOST = "127.0.0.1"
NAME = "www.gslb.example.com"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    directory = tmp_path_factory.mktemp("hostile")
    log = directory / "serve.log"
    server = start_serve(copy_sample(directory / "zones"), log=log)
    yield server, log
    server.stop()


def wire_name(labels: list[bytes]) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def raw_query(qid: int, name: bytes, *, opt: bytes = b"", flags: int = 0x0100) -> bytes:
    header = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 1 if opt else 0)
    return header + name + struct.pack("!HH", 1, 1) + opt


def opt_record(rdata: bytes, rdlength: int | None = None) -> bytes:
    length = len(rdata) if rdlength is None else rdlength
    return b"\x00" + struct.pack("!HHIH", 41, 1232, 0, length) + rdata


def ecs_option(data: bytes) -> bytes:
    return struct.pack("!HH", 8, len(data)) + data


def exchange(port: int, packet: bytes, timeout: float = 2.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (HOST, port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


OWN_NAME = wire_name([b"www", b"gslb", b"example", b"com"])
# 256 octets on the wire: labels of 63, 63, 63 and 45 octets (each with its length
# byte), then gslb.example.com (18).
LONG_NAME = wire_name([b"a" * 63, b"a" * 63, b"a" * 63, b"b" * 45, b"gslb", b"example", b"com"])


def test_long_name_is_formerr(served: tuple[Served, Path]) -> None:
    server, _ = served
    assert len(LONG_NAME) == 256
    reply = exchange(server.dns_port, raw_query(7, LONG_NAME))
    assert reply is not None
    assert reply[:2] == b"\x00\x07" and reply[3] & 0x0F == dns.rcode.FORMERR


@pytest.mark.parametrize("length", [0x40, 0x80, 0xBF])
def test_a_label_length_of_the_reserved_types_is_formerr(
    served: tuple[Served, Path], length: int
) -> None:
    # Lengths 64-191 are the reserved label types 01 and 10 (RFC 6891 §5), not labels:
    # dnslib read them as long labels, and encoding the reply then raised (SERVFAIL and a
    # traceback; found by bench/dns/fuzz.py).
    server, log = served
    name = bytes([length]) + b"a" * length + wire_name([b"gslb", b"example", b"com"])
    reply = exchange(server.dns_port, raw_query(9, name))
    assert reply is not None
    assert reply[:2] == b"\x00\x09" and reply[3] & 0x0F == dns.rcode.FORMERR
    assert "Traceback" not in log.read_text()


def test_one_bad_query_costs_only_its_own_answer(served: tuple[Served, Path]) -> None:
    """All queries land in the same receive batches (the server is stopped while they are
    sent); the one whose name cannot be encoded must not lose the others' replies."""
    server, _ = served
    good = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(60)]
    bad = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    everyone = [*good, bad]
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        for i, sock in enumerate(good[:30]):
            sock.sendto(dns.message.make_query(NAME, "A", id=i).to_wire(), (HOST, server.dns_port))
        bad.sendto(raw_query(999, LONG_NAME), (HOST, server.dns_port))
        for i, sock in enumerate(good[30:], start=30):
            sock.sendto(dns.message.make_query(NAME, "A", id=i).to_wire(), (HOST, server.dns_port))
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    try:
        for i, sock in enumerate(good):
            sock.settimeout(3)
            reply = dns.message.from_wire(sock.recv(65535))
            assert reply.id == i and reply.rcode() == dns.rcode.NOERROR and reply.answer
        bad.settimeout(3)
        assert bad.recv(65535)[3] & 0x0F == dns.rcode.FORMERR
    finally:
        for sock in everyone:
            sock.close()


@pytest.mark.parametrize(
    "data",
    [
        b"",  # zero-length ECS: was answered NOERROR
        b"\x00",
        b"\x00\x01",  # these two raised IndexError, a traceback per packet
        b"\x00\x01\x18",
        b"\x00\x03\x18\x00\x01\x02\x03",  # family 3
        b"\x00\x01\x21\x00" + bytes(5),  # /33 for IPv4
        b"\x00\x01\x18\x00\x51\x02",  # /24 with 2 address bytes
        b"\x00\x01\x17\x00\x51\x02\x45",  # bits set beyond the /23
    ],
)
def test_malformed_ecs_is_formerr_with_question_and_opt(
    served: tuple[Served, Path], data: bytes
) -> None:
    server, _ = served
    packet = raw_query(42, OWN_NAME, opt=opt_record(ecs_option(data)))
    reply = exchange(server.dns_port, packet)
    assert reply is not None
    message = dns.message.from_wire(reply)
    assert message.rcode() == dns.rcode.FORMERR
    assert message.id == 42
    assert [str(q.name) for q in message.question] == [NAME + "."]  # RFC 6891 §7
    assert message.edns == 0  # an OPT: dig need not retry without EDNS


@pytest.mark.parametrize(
    "opt",
    [
        opt_record(b"\x00\x0a\x00"),  # three bytes: not even an option header
        opt_record(b"\x00\x0a\x00\x08\x01\x02"),  # an option claiming 8 bytes, 2 there
        opt_record(ecs_option(b"\x00\x01\x18\x00\x51\x02\x45") + b"\x00"),  # a stray byte
    ],
)
def test_options_overrunning_the_opt_record_are_formerr(
    served: tuple[Served, Path], opt: bytes
) -> None:
    server, _ = served
    reply = exchange(server.dns_port, raw_query(43, OWN_NAME, opt=opt))
    assert reply is not None
    assert reply[3] & 0x0F == dns.rcode.FORMERR


def test_error_replies_echo_the_question_and_opt(served: tuple[Served, Path]) -> None:
    server, _ = served
    query = dns.message.make_query(NAME, "A", use_edns=0, want_dnssec=True)
    query.set_opcode(dns.opcode.NOTIFY)
    reply = exchange(server.dns_port, query.to_wire())
    assert reply is not None
    message = dns.message.from_wire(reply)
    assert message.rcode() == dns.rcode.NOTIMP
    assert [str(q.name) for q in message.question] == [NAME + "."]
    assert message.edns == 0 and message.ednsflags & 0x8000  # DO echoed


def test_a_flood_of_bad_options_logs_a_line_or_two(served: tuple[Served, Path]) -> None:
    server, log = served
    before = log.read_text().count("\n")
    packets = [raw_query(i, OWN_NAME, opt=opt_record(ecs_option(b"\x00\x01"))) for i in range(500)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        for packet in packets:
            sock.sendto(packet, (HOST, server.dns_port))
            assert sock.recv(65535)[3] & 0x0F == dns.rcode.FORMERR
    text = log.read_text()
    assert "Traceback" not in text
    assert text.count("\n") - before <= 5


def scrape(server: Served) -> str:
    url = f"http://{HOST}:{server.api_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_metric_labels_stay_bounded_under_many_raw_qtypes(served: tuple[Served, Path]) -> None:
    """Every raw QTYPE used to become a label value (131,072 packets: 92,620 series)."""
    server, _ = served
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        for qtype in range(300, 700):  # none of them a type we know by name
            wire = struct.pack("!HHHHHH", qtype, 0, 1, 0, 0, 0) + OWN_NAME
            sock.sendto(wire + struct.pack("!HH", qtype, 1), (HOST, server.dns_port))
            sock.recv(65535)  # one at a time: none is lost to a full buffer
        for n in range(50):  # names outside our zones (REFUSED) make no zone labels either
            query = dns.message.make_query(f"n{n}.elsewhere{n}.test", "A")
            sock.sendto(query.to_wire(), (HOST, server.dns_port))
            sock.recv(65535)
    series = [
        line for line in scrape(server).splitlines() if line.startswith("gslb_dns_queries_total{")
    ]
    assert 0 < len(series) <= 40, series
    assert any('qtype="other"' in line for line in series)
    zones = {line.split('zone="')[1].split('"')[0] for line in series}
    assert zones <= {"", "gslb.example.com."}
