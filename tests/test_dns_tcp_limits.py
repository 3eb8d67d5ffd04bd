"""DNS over TCP under the `dns.tcp` limits, with real sockets against `gslb serve`: cheap
clients (idle, trickling, not reading) cannot lock a legitimate TCP client out."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator

import dns.message
import dns.query
import dns.rcode
import pytest

from gslb.dns.server import TCP_QUERIES_BETWEEN_UDP, DnsServer
from gslb.model import HostPort
from tests.conftest import Served, copy_sample, start_serve

MAX_CONNECTIONS = 12
PER_CLIENT = 4
IO_TIMEOUT = 0.5
IDLE_TIMEOUT = 30  # long: only the limits under test may close a connection


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    zones = copy_sample(tmp_path_factory.mktemp("tcp"))
    settings = zones / "gslb.yaml"
    settings.write_text(
        settings.read_text().replace(
            "  max_udp_size: 1232\n",
            f"  max_udp_size: 1232\n  tcp_idle_timeout: {IDLE_TIMEOUT}s\n"
            f"  tcp: {{max_connections: {MAX_CONNECTIONS}, max_per_client: {PER_CLIENT}, "
            f"io_timeout: {int(IO_TIMEOUT * 1000)}ms}}\n",
        )
    )
    zone = zones / "gslb.example.com.yaml"
    big = ", ".join(f'"{i:02d} {"x" * 200}"' for i in range(15))  # a 3 KB answer
    zone.write_text(zone.read_text().replace("records:\n", f"records:\n  big: {{TXT: [{big}]}}\n"))
    server = start_serve(zones)
    yield server
    server.stop()


def connect(served: Served, source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(5)
    sock.connect(("127.0.0.1", served.dns_port))
    return sock


def framed(name: str = "ns1.gslb.example.com", qid: int = 1, rdtype: str = "A") -> bytes:
    wire = dns.message.make_query(name, rdtype, id=qid).to_wire()
    return struct.pack("!H", len(wire)) + wire


def closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the server closes `sock` (EOF or reset) within `timeout`."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65535):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def answered(served: Served, source: str) -> bool:
    with connect(served, source) as sock:
        sock.sendall(framed())
        size = struct.unpack("!H", sock.recv(2))[0]
        reply = b""
        while len(reply) < size:
            reply += sock.recv(size - len(reply))
    return dns.message.from_wire(reply).rcode() == dns.rcode.NOERROR


def test_one_address_gets_at_most_max_per_client(served: Served) -> None:
    held = [connect(served, "127.0.0.2") for _ in range(PER_CLIENT)]
    try:
        extra = connect(served, "127.0.0.2")
        assert closed_by_server(extra)  # refused: the address holds its share
        extra.close()
        assert answered(served, "127.0.0.3")  # another address is served
    finally:
        for sock in held:
            sock.close()


def test_a_trickled_query_loses_its_connection_after_io_timeout(served: Served) -> None:
    query = framed()
    with connect(served, "127.0.0.4") as sock:
        started = time.monotonic()
        sock.sendall(query[:3])
        closed = False
        for byte in query[3:-1]:  # one byte every IO_TIMEOUT / 3: never idle, never whole
            time.sleep(IO_TIMEOUT / 3)
            try:
                sock.sendall(bytes([byte]))
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
        closed = closed or closed_by_server(sock, timeout=IO_TIMEOUT * 4)
        elapsed = time.monotonic() - started
    assert closed and elapsed < len(query) * IO_TIMEOUT / 3  # before the query was whole


def test_a_full_server_closes_the_oldest_idle_connection_for_a_new_client(
    served: Served,
) -> None:
    idle = [connect(served, f"127.0.1.{1 + i // PER_CLIENT}") for i in range(MAX_CONNECTIONS)]
    try:
        # Each is known to the server once it answered on it: then the table is full.
        for sock in idle:
            sock.sendall(framed())
            size = struct.unpack("!H", sock.recv(2))[0]
            sock.recv(size)
        assert answered(served, "127.0.2.1")  # a legitimate client still gets its answer
        assert closed_by_server(idle[0])  # the oldest idle connection made room
    finally:
        for sock in idle:
            sock.close()


def test_a_client_that_never_reads_loses_its_slot(served: Served) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind(("127.0.0.5", 0))
    sock.connect(("127.0.0.1", served.dns_port))
    sock.setblocking(False)
    pipelined = b"".join(framed("big.gslb.example.com", i % 65536, "TXT") for i in range(5000))
    sent = 0
    deadline = time.monotonic() + 10
    try:
        while sent < len(pipelined) and time.monotonic() < deadline:
            try:
                sent += sock.send(pipelined[sent : sent + 65536])
            except BlockingIOError:
                time.sleep(0.01)  # the server stopped reading: its replies wait for us
            except (ConnectionResetError, BrokenPipeError):
                break
        time.sleep(IO_TIMEOUT * 3)  # the deadline for taking the replies passes unread
        assert closed_by_server(sock, timeout=5)
    finally:
        sock.close()
    assert answered(served, "127.0.0.5")


def test_pipelined_tcp_queries_do_not_hold_up_udp(served: Served) -> None:
    """Thousands of queries in one TCP read are answered a share per loop turn: a UDP query
    that arrives meanwhile is answered long before the TCP replies are all out. The server
    is stopped while the TCP queries arrive (so its first read holds thousands), and
    stopped again the moment the UDP reply is in, to count the TCP replies made by then."""
    count = 4000
    pipelined = b"".join(framed("ns1.gslb.example.com", i) for i in range(count))
    pid = served.process.pid
    with (
        connect(served, "127.0.0.6") as tcp_sock,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp_sock,
    ):
        tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        udp_sock.settimeout(5)
        os.kill(pid, signal.SIGSTOP)
        try:
            tcp_sock.sendall(pipelined)
        finally:
            os.kill(pid, signal.SIGCONT)
        # The server is busy with the TCP queries when this arrives.
        udp_sock.sendto(framed("ns2.gslb.example.com", 7)[2:], ("127.0.0.1", served.dns_port))
        try:
            reply = udp_sock.recv(65535)
        finally:
            os.kill(pid, signal.SIGSTOP)
        try:
            assert dns.message.from_wire(reply).id == 7
            tcp_sock.setblocking(False)
            received = b""
            try:
                while chunk := tcp_sock.recv(1 << 22):
                    received += chunk
            except BlockingIOError:
                pass
        finally:
            os.kill(pid, signal.SIGCONT)
    replies = 0
    while len(received) >= 2 + int.from_bytes(received[:2], "big"):
        received = received[2 + int.from_bytes(received[:2], "big") :]
        replies += 1
    assert replies < count // 2, replies  # the UDP answer did not wait for them


def test_udp_is_answered_between_tcp_queries_of_busy_connections() -> None:
    """The order a DnsServer answers in, recorded by its handler: four connections with
    hundreds of pipelined queries each and one UDP query, all waiting when the loop
    resumes. The UDP query is answered within TCP_QUERIES_BETWEEN_UDP TCP queries, not
    after a loop turn of every busy connection (8 each: 32)."""
    order: list[str] = []

    def handle(wire: bytes, peer: str, tcp: bool) -> bytes:
        order.append("tcp" if tcp else "udp")
        return wire[:2] + bytes((wire[2] | 0x80, wire[3])) + wire[4:]

    loop = asyncio.new_event_loop()
    server = DnsServer(handle, [HostPort("127.0.0.1", 0)])
    port = loop.run_until_complete(server.start())[0].port
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for sock in connections:  # accepted and answering before the test proper
            sock.sendall(framed("ns1.gslb.example.com", 1))
            assert len(sock.recv(1 << 16)) > 2
        order.clear()
        held, release = threading.Event(), threading.Event()
        # The loop is held until every query is in its socket's buffer (loopback: sendall
        # has returned), however slow the machine; a fixed pause let the loop resume
        # before the UDP query was sent when CI was loaded.
        loop.call_soon_threadsafe(lambda: (held.set(), release.wait(10)))
        assert held.wait(5)
        for sock in connections:
            sock.sendall(b"".join(framed("ns1.gslb.example.com", i) for i in range(300)))
        udp.sendto(framed("ns2.gslb.example.com", 7)[2:], ("127.0.0.1", port))
        release.set()
        udp.settimeout(5)
        assert udp.recv(65535)[:2] == b"\x00\x07"
        assert "udp" in order and order.index("udp") <= TCP_QUERIES_BETWEEN_UDP, order[:40]
    finally:
        for sock in [*connections, udp]:
            sock.close()
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
