"""The batched UDP path (gslb/dns/mmsg.py) on real loopback sockets: every reply goes back
to the socket its query came from, across several batches, with the peer address the
handler expects. Every test runs on both batch implementations, the C module
(gslb/dns/_mmsg.c) and its ctypes twin, and the same traffic through both must give the
same bytes back."""

from __future__ import annotations

import logging
import select
import shutil
import socket
from collections.abc import Iterator

import dns.exception
import dns.message
import dns.rrset
import pytest

from gslb.dns import mmsg

pytestmark = pytest.mark.skipif(not mmsg.ENGINES, reason="recvmmsg/sendmmsg: Linux only")


@pytest.fixture(params=["c", "py"])
def use(request: pytest.FixtureRequest) -> str:
    if request.param not in mmsg.ENGINES:
        pytest.skip(f"batch implementation {request.param!r} not built here")
    return str(request.param)


def bound(family: socket.AddressFamily, host: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


@pytest.fixture
def server() -> Iterator[socket.socket]:
    sock = bound(socket.AF_INET, "127.0.0.1")
    yield sock
    sock.close()


def drain_until_quiet(batched: mmsg.BatchedUdp, sock: socket.socket) -> None:
    """Run the reader callback until nothing is waiting (as the event loop would)."""
    while select.select([sock], [], [], 0.2)[0]:
        batched.drain(4)


def receive_all(sock: socket.socket, expected: int) -> list[bytes]:
    out: list[bytes] = []
    while len(out) < expected and select.select([sock], [], [], 2.0)[0]:
        out.append(sock.recv(65535))
    return out


def test_replies_go_back_to_their_senders_across_batches(server: socket.socket, use: str) -> None:
    seen_peers: set[str] = set()

    def handle(wire: bytes, peer: str, tcp: bool) -> bytes | None:
        assert not tcp
        seen_peers.add(peer)
        if wire.startswith(b"drop"):
            return None
        return b"reply to " + wire

    batched = mmsg.BatchedUdp(server, handle, None, 4096, use=use)
    clients = [bound(socket.AF_INET, f"127.0.0.{n}") for n in (1, 2, 3)]
    try:
        address = server.getsockname()
        per_client = 3 * mmsg.BATCH  # several full batches, interleaved senders
        for i in range(per_client):
            for n, client in enumerate(clients):
                client.sendto(f"{'drop' if i % 10 == 9 else 'q'} {n} {i}".encode(), address)
        drain_until_quiet(batched, server)
        for n, client in enumerate(clients):
            kept = [i for i in range(per_client) if i % 10 != 9]
            replies = receive_all(client, len(kept))
            assert replies == [f"reply to q {n} {i}".encode() for i in kept]
            assert not select.select([client], [], [], 0.05)[0]  # nothing for dropped ones
        assert seen_peers == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}
    finally:
        for client in clients:
            client.close()


def test_cached_answers_need_no_peer_and_the_rest_fall_through(
    server: socket.socket, use: str
) -> None:
    handled: list[bytes] = []

    def cached(wire: bytes) -> bytes | None:
        return b"cached " + wire if wire.startswith(b"hot") else None

    def handle(wire: bytes, peer: str, tcp: bool) -> bytes | None:
        handled.append(wire)
        return b"full " + wire

    batched = mmsg.BatchedUdp(server, handle, cached, 4096, use=use)
    with bound(socket.AF_INET, "127.0.0.1") as client:
        for i in range(100):
            client.sendto(f"{'hot' if i % 2 else 'cold'} {i}".encode(), server.getsockname())
        drain_until_quiet(batched, server)
        replies = receive_all(client, 100)
    assert replies == [
        (b"cached hot " if i % 2 else b"full cold ") + str(i).encode() for i in range(100)
    ]
    assert handled == [f"cold {i}".encode() for i in range(0, 100, 2)]


def test_a_failing_cached_answer_costs_nothing_but_itself(server: socket.socket, use: str) -> None:
    def cached(wire: bytes) -> bytes | None:
        if wire == b"bad":
            raise RuntimeError("a bug")
        return b"cached " + wire

    def handle(wire: bytes, peer: str, tcp: bool) -> bytes | None:
        return b"full " + wire

    batched = mmsg.BatchedUdp(server, handle, cached, 4096, use=use)
    with bound(socket.AF_INET, "127.0.0.1") as client:
        for payload in (b"a", b"bad", b"b"):
            client.sendto(payload, server.getsockname())
        drain_until_quiet(batched, server)
        assert receive_all(client, 3) == [b"cached a", b"full bad", b"cached b"]


def test_long_datagrams_are_cut_at_max_query(server: socket.socket, use: str) -> None:
    lengths: list[int] = []

    def handle(wire: bytes, peer: str, tcp: bool) -> bytes | None:
        lengths.append(len(wire))
        return b"ok"

    batched = mmsg.BatchedUdp(server, handle, None, 512, use=use)
    with bound(socket.AF_INET, "127.0.0.1") as client:
        for size in (12, 512, 513, 3000):
            client.sendto(b"x" * size, server.getsockname())
        drain_until_quiet(batched, server)
        assert receive_all(client, 4) == [b"ok"] * 4
    assert lengths == [12, 512, 512, 512]


def test_ipv6_peers(server: socket.socket, use: str) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        six = bound(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no ::1 here")
    peers: list[str] = []

    def handle(wire: bytes, peer: str, tcp: bool) -> bytes | None:
        peers.append(peer)
        return wire[::-1]

    try:
        batched = mmsg.BatchedUdp(six, handle, None, 4096, use=use)
        with bound(socket.AF_INET6, "::1") as client:
            client.sendto(b"abc", six.getsockname()[:2])
            drain_until_quiet(batched, six)
            assert receive_all(client, 1) == [b"cba"]
        assert peers == ["::1"]
    finally:
        six.close()


def dns_handler(peers: list[str]) -> tuple[mmsg.Cached, mmsg.Handler]:
    """Real DNS replies: `cached` answers names under hot. itself; the full path answers
    the rest with the peer's address in a TXT record, and drops names under drop."""

    def reply(wire: bytes, text: str) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        name = query.question[0].name
        response.answer.append(dns.rrset.from_text(name, 60, "IN", "TXT", f'"{text}"'))
        return response.to_wire()

    def cached(wire: bytes) -> bytes | None:
        try:
            name = dns.message.from_wire(wire).question[0].name.to_text()
        except dns.exception.DNSException:
            return None  # a cut datagram: the full path answers FORMERR
        return reply(wire, "cached") if name.startswith("hot") else None

    def handle(wire: bytes, peer: str, tcp: bool) -> bytes | None:
        peers.append(peer)
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            formerr = bytearray(wire[:12].ljust(12, b"\0"))
            formerr[2], formerr[3] = 0x80, 0x01
            return bytes(formerr)
        if query.question[0].name.to_text().startswith("drop"):
            return None
        return reply(wire, f"full for {peer}")

    return cached, handle


def exchange(
    use: str, family: socket.AddressFamily, host: str
) -> tuple[list[list[bytes]], list[str]]:
    """A fixed mix of queries from two clients through one implementation: what each
    client got back (in order), and the peers the full path saw."""
    server = bound(family, host)
    clients = [bound(family, host) for _ in range(2)]
    peers: list[str] = []
    cached, handle = dns_handler(peers)
    batched = mmsg.BatchedUdp(server, handle, cached, 512, use=use)
    try:
        address = server.getsockname()[:2]
        for i in range(150):  # more than two batches
            label = ("hot", "cold", "drop")[i % 3]
            query = dns.message.make_query(f"{label}{i}.example.", "TXT", id=i)
            wire = query.to_wire() if i % 7 else query.to_wire() + b"\0" * 600  # cut at 512
            clients[i % 2].sendto(wire, address)
        drain_until_quiet(batched, server)
        expected = [sum(1 for i in range(c, 150, 2) if i % 3 != 2) for c in range(2)]
        return [receive_all(c, n) for c, n in zip(clients, expected, strict=True)], peers
    finally:
        for sock in (server, *clients):
            sock.close()


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_both_implementations_send_the_same_bytes(family: socket.AddressFamily, host: str) -> None:
    if len(mmsg.ENGINES) < 2:
        pytest.skip("the C module is not built here")
    try:
        bound(family, host).close()
    except OSError:
        pytest.skip(f"no {host} here")
    from_c, peers_c = exchange("c", family, host)
    from_py, peers_py = exchange("py", family, host)
    assert from_c == from_py
    assert peers_c == peers_py and set(peers_c) == {host}
    for replies in from_c:  # each client got cached and full answers, FORMERR for cut ones
        assert [len(replies)] == [50]
        got = b"|".join(replies)
        assert b"\x06cached" in got and f"full for {host}".encode() in got
        assert b"\x80\x01\x00\x01" in got


IP_RECVERR = 11  # <linux/in.h>; the socket module has it from Python 3.12 on


def test_icmp_errors_for_earlier_replies_are_skipped(
    use: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With IP_RECVERR a port unreachable for an earlier reply comes back as an error of a
    later call; the batch must read on and answer the next client. (The error queue keeps
    the socket readable, so this drains by hand rather than until select says quiet.)"""
    caplog.set_level(logging.DEBUG, logger="gslb.dns.mmsg")
    server = bound(socket.AF_INET, "127.0.0.1")
    server.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)

    def handle(wire: bytes, peer: str, tcp: bool) -> bytes | None:
        return b"re " + wire

    batched = mmsg.BatchedUdp(server, handle, None, 512, use=use)
    try:
        for round_ in range(3):
            gone = bound(socket.AF_INET, "127.0.0.1")
            gone.sendto(b"x", server.getsockname())
            assert select.select([server], [], [], 2.0)[0]
            gone.close()  # its reply meets a closed port: ICMP port unreachable
            batched.drain(1)
            with bound(socket.AF_INET, "127.0.0.1") as client:
                client.sendto(f"q{round_}".encode(), server.getsockname())
                assert select.select([server], [], [], 2.0)[0]
                batched.drain(4)  # the error, then the query
                assert receive_all(client, 1) == [f"re q{round_}".encode()]
        assert "Connection refused" in caplog.text  # the errors did come, and were skipped
    finally:
        server.close()


def test_a_full_send_buffer_drops_the_rest_and_the_next_batch_goes_out(use: str) -> None:
    """Loopback UDP never fills a send buffer (its packets are handed over at once), so
    this uses a datagram socket pair, whose sender waits for its peer to read: a batch
    of replies larger than that room is cut, the rest dropped, and the socket serves on."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # room for two replies
    ours.setblocking(False)

    def cached(wire: bytes) -> bytes | None:
        return wire * 1000  # 3,000 bytes each

    def handle(wire: bytes, peer: str, tcp: bool) -> bytes | None:
        raise AssertionError("an unnamed peer is never handled")

    batched = mmsg.BatchedUdp(ours, handle, cached, 512, use=use)
    try:
        for i in range(20):
            theirs.send(b"%03d" % i)
        batched.drain(1)
        first = receive_all(theirs, 20)
        assert 0 < len(first) < 20  # the buffer held some, the rest were dropped
        assert first == [b"%03d" % i * 1000 for i in range(len(first))]
        theirs.send(b"new")
        batched.drain(1)
        assert receive_all(theirs, 1) == [b"new" * 1000]
    finally:
        ours.close()
        theirs.close()


def test_gslb_udp_batch_chooses_the_implementation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GSLB_UDP_BATCH", "py")
    assert mmsg.engine() == "py" and mmsg.available()
    monkeypatch.setenv("GSLB_UDP_BATCH", "0")
    assert mmsg.engine() is None and not mmsg.available()
    monkeypatch.delenv("GSLB_UDP_BATCH")
    assert mmsg.engine() == ("c" if "c" in mmsg.ENGINES else "py")


@pytest.mark.skipif(not shutil.which("cc"), reason="no C compiler: the twin runs instead")
def test_the_c_module_is_built_where_a_compiler_is() -> None:
    from gslb.dns import _mmsg

    assert mmsg.ENGINES["c"] is _mmsg.Batch
