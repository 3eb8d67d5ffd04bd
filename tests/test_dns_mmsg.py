"""The batched UDP path (gslb/dns/mmsg.py) on real loopback sockets: every reply goes back
to the socket its query came from, across several batches, with the peer address the
handler expects."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import pytest

from gslb.dns import mmsg

pytestmark = pytest.mark.skipif(not mmsg.available(), reason="recvmmsg/sendmmsg: Linux only")


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


def test_replies_go_back_to_their_senders_across_batches(server: socket.socket) -> None:
    seen_peers: set[str] = set()

    def handle(wire: bytes, peer: str, tcp: bool) -> bytes | None:
        assert not tcp
        seen_peers.add(peer)
        if wire.startswith(b"drop"):
            return None
        return b"reply to " + wire

    batched = mmsg.BatchedUdp(server, handle, None, 4096)
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


def test_cached_answers_need_no_peer_and_the_rest_fall_through(server: socket.socket) -> None:
    handled: list[bytes] = []

    def cached(wire: bytes) -> bytes | None:
        return b"cached " + wire if wire.startswith(b"hot") else None

    def handle(wire: bytes, peer: str, tcp: bool) -> bytes | None:
        handled.append(wire)
        return b"full " + wire

    batched = mmsg.BatchedUdp(server, handle, cached, 4096)
    with bound(socket.AF_INET, "127.0.0.1") as client:
        for i in range(100):
            client.sendto(f"{'hot' if i % 2 else 'cold'} {i}".encode(), server.getsockname())
        drain_until_quiet(batched, server)
        replies = receive_all(client, 100)
    assert replies == [
        (b"cached hot " if i % 2 else b"full cold ") + str(i).encode() for i in range(100)
    ]
    assert handled == [f"cold {i}".encode() for i in range(0, 100, 2)]


def test_a_failing_cached_answer_costs_nothing_but_itself(server: socket.socket) -> None:
    def cached(wire: bytes) -> bytes | None:
        if wire == b"bad":
            raise RuntimeError("a bug")
        return b"cached " + wire

    def handle(wire: bytes, peer: str, tcp: bool) -> bytes | None:
        return b"full " + wire

    batched = mmsg.BatchedUdp(server, handle, cached, 4096)
    with bound(socket.AF_INET, "127.0.0.1") as client:
        for payload in (b"a", b"bad", b"b"):
            client.sendto(payload, server.getsockname())
        drain_until_quiet(batched, server)
        assert receive_all(client, 3) == [b"cached a", b"full bad", b"cached b"]


def test_long_datagrams_are_cut_at_max_query(server: socket.socket) -> None:
    lengths: list[int] = []

    def handle(wire: bytes, peer: str, tcp: bool) -> bytes | None:
        lengths.append(len(wire))
        return b"ok"

    batched = mmsg.BatchedUdp(server, handle, None, 512)
    with bound(socket.AF_INET, "127.0.0.1") as client:
        for size in (12, 512, 513, 3000):
            client.sendto(b"x" * size, server.getsockname())
        drain_until_quiet(batched, server)
        assert receive_all(client, 4) == [b"ok"] * 4
    assert lengths == [12, 512, 512, 512]


def test_ipv6_peers(server: socket.socket) -> None:
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
        batched = mmsg.BatchedUdp(six, handle, None, 4096)
        with bound(socket.AF_INET6, "::1") as client:
            client.sendto(b"abc", six.getsockname()[:2])
            drain_until_quiet(batched, six)
            assert receive_all(client, 1) == [b"cba"]
        assert peers == ["::1"]
    finally:
        six.close()
