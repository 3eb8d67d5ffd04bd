"""UDP and TCP transports for the responder: they move bytes and nothing else.

UDP is read straight from a non-blocking socket by the loop's reader callback, a batch
of datagrams per wakeup: asyncio's (and uvloop's) datagram transports cost more per
datagram than answering a cached query does (a trivial echo server tops out at about 94k
datagrams/s on one core through them, 133k with `recvfrom`/`sendto` from the callback).
On Linux the batch is read with one `recvmmsg` and answered with one `sendmmsg`
(gslb/dns/mmsg.py); elsewhere, or with GSLB_UDP_BATCH=0, with a `recvfrom` and a
`sendto` per datagram. A reply that does not fit the socket's send buffer is dropped, as
DNS servers do; the client asks again.

TCP follows RFC 7766: two-byte length framing, pipelined queries answered in
order on one connection, idle connections closed after a timeout, and reading
paused while a slow reader has not taken its replies. Connections are capped in all
and per client address (`dns.tcp`), and a query that trickles in, or replies left
unread, cost the connection after `io_timeout`: a few cheap clients cannot hold
every slot and lock legitimate TCP clients (the fallback after TC=1) out.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from gslb.dns import mmsg
from gslb.model import HostPort, TcpSettings
from gslb.ratelog import RateLog

log = logging.getLogger(__name__)

Handler = Callable[[bytes, str, bool], bytes | None]
Cached = Callable[[bytes], bytes | None]
Limit = Callable[[str, bytes], bytes | None]  # RRL: (peer, reply) -> what to send
UDP_SOCKET_BUFFER = 4 << 20
UDP_BATCH = 256  # datagrams answered per wakeup before other callbacks get a turn
TCP_QUERIES_PER_TURN = 8  # pipelined TCP queries answered before the loop's next turn
TCP_QUERIES_BETWEEN_UDP = 2  # and between two looks at the UDP sockets
MAX_UDP_QUERY = 4096  # bytes read per datagram: longer ones are cut, and get FORMERR


class UdpListener:
    """One bound UDP socket, drained by the event loop's reader callback."""

    def __init__(
        self,
        sock: socket.socket,
        handle: Handler,
        cached: Cached | None,
        limit: Limit | None = None,
    ) -> None:
        self.sock = sock
        self._handle = handle
        self._cached = cached
        self._limit = limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log = RateLog(log)
        self.drain_now: Callable[[], None] = lambda: None  # answers what waits, from anywhere

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if mmsg.available():
            batched = mmsg.BatchedUdp(
                self.sock, self._handle, self._cached, MAX_UDP_QUERY, self._limit
            )
            loop.add_reader(self.sock.fileno(), batched.drain, UDP_BATCH // mmsg.BATCH)
            self.drain_now = lambda: batched.drain(1)
        else:
            loop.add_reader(self.sock.fileno(), self._drain)
            self.drain_now = self._drain

    def _drain(self) -> None:
        recv = self.sock.recvfrom
        send = self.sock.sendto
        handle = self._handle
        cached = self._cached or (lambda wire: None)
        limit = self._limit
        for _ in range(UDP_BATCH):
            try:
                data, addr = recv(MAX_UDP_QUERY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # an ICMP error reported for an earlier reply
                log.debug("UDP receive error: %s", exc)
                continue
            try:
                reply = cached(data)
                if reply is None:
                    reply = handle(data, addr[0], False)
            except Exception:  # one query must cost only its own answer
                self._log.exception("handle", "query from %s not answered", addr[0])
                continue
            if reply is not None and limit is not None:
                reply = limit(addr[0], reply)
            if reply is None:
                continue
            try:
                send(reply, addr)
            except (BlockingIOError, InterruptedError):
                pass  # the send buffer is full: drop the reply, the client retries
            except OSError as exc:
                log.debug("UDP send error to %s: %s", addr[0], exc)

    def close(self) -> None:
        self.drain_now = lambda: None
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None
        self.sock.close()


def udp_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            # A burst larger than the default buffers (about 250 datagrams) would be
            # dropped while the loop is busy (the kernel caps this at net.core.*mem_max).
            if sock.getsockopt(socket.SOL_SOCKET, option) < UDP_SOCKET_BUFFER:
                sock.setsockopt(socket.SOL_SOCKET, option, UDP_SOCKET_BUFFER)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class TcpConnections:
    """The open DNS-over-TCP connections of a server, oldest first, and their limits.

    `dns.tcp`: at most `max_per_client` from one source address (more are refused) and
    `max_connections` in all; when full, the oldest idle connection gives way to the new
    one (as Knot does), and only when none is idle is the new one refused. A connection is
    idle when it holds no part of a query and no reply waits for the client to read it.
    """

    def __init__(self, limits: TcpSettings) -> None:
        self.limits = limits
        self.open: dict[TcpProtocol, None] = {}  # insertion order: oldest first
        self._per_client: dict[str, int] = {}
        self.refused = 0
        self.evicted = 0
        self.timed_out = 0

    def admit(self, connection: TcpProtocol, peer: str) -> bool:
        if self._per_client.get(peer, 0) >= self.limits.max_per_client:
            self.refused += 1
            return False
        if len(self.open) >= self.limits.max_connections:
            victim = next((c for c in self.open if c.idle), None)
            if victim is None:
                self.refused += 1
                return False
            self.evicted += 1
            victim.abort()
        self.open[connection] = None
        self._per_client[peer] = self._per_client.get(peer, 0) + 1
        return True

    def remove(self, connection: TcpProtocol, peer: str) -> None:
        if connection in self.open:
            del self.open[connection]
            left = self._per_client[peer] - 1
            if left:
                self._per_client[peer] = left
            else:
                del self._per_client[peer]

    def __len__(self) -> int:
        return len(self.open)


class TcpProtocol(asyncio.Protocol):
    """One DNS-over-TCP connection (RFC 7766) under the limits of `TcpConnections`.

    One deadline at a time: idle (nothing pending) for `idle_timeout`; a query begun must
    arrive whole within `io_timeout` of its first byte, however it trickles in; replies
    the client does not read (the transport paused us) must be taken within `io_timeout`.
    """

    def __init__(
        self,
        handle: Handler,
        cached: Cached | None,
        idle_timeout: float,
        connections: TcpConnections,
        ratelog: RateLog,
        udp_first: Callable[[], None] = lambda: None,
    ) -> None:
        self._handle = handle
        self._udp_first = udp_first
        # A cached reply is never truncated, so it is the TCP reply too (None: no memo).
        self._cached: Cached = cached or (lambda wire: None)
        self._log = ratelog
        self._idle_timeout = idle_timeout
        self._io_timeout = connections.limits.io_timeout
        self._connections = connections
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._peer = ""
        self._admitted = False
        self._paused = False  # the client has not read its replies: answer nothing more
        self._turn_pending = False  # queries left for the loop's next turn
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def idle(self) -> bool:
        return not self._buffer and not self._paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = self._transport.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else ""
        if not self._connections.admit(self, self._peer):
            self._transport.abort()
            return
        self._admitted = True
        self._wait(self._idle_timeout)

    def _wait(self, seconds: float) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = asyncio.get_running_loop().call_later(seconds, self._expired)

    def _expired(self) -> None:
        if not self.idle:
            self._connections.timed_out += 1
        self.abort()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        began_empty = not self._buffer
        self._buffer += data
        if not self._turn_pending:
            self._answer_some(began_empty)

    def _answer_some(self, began_empty: bool = False) -> None:
        """Answer the whole queries buffered, at most `TCP_QUERIES_PER_TURN` of them now.

        One read can hold thousands of pipelined queries; answered in one go they would
        hold every UDP answer up for hundreds of ms. So after a turn's share the rest
        waits for the loop's next turn (reading paused meanwhile, so the buffer stays
        bounded), and while the client has not read its replies, nothing more is answered.
        Every few TCP queries the UDP sockets are drained first (`udp_first`): UDP, the
        transport of nearly every query, waits for a few TCP answers at most, not for a
        loop turn of every busy connection.
        """
        self._turn_pending = False
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        buffer = self._buffer
        replies: list[bytes] = []
        while len(buffer) >= 2 and not self._paused:
            if len(replies) == TCP_QUERIES_PER_TURN:
                self._turn_pending = True
                transport.pause_reading()
                asyncio.get_running_loop().call_soon(self._next_turn)
                break
            if len(replies) % TCP_QUERIES_BETWEEN_UDP == 0:
                self._udp_first()
            size = int.from_bytes(buffer[:2], "big")
            if len(buffer) < 2 + size:
                break
            message = bytes(buffer[2 : 2 + size])
            del buffer[: 2 + size]
            try:
                reply = self._cached(message) or self._handle(message, self._peer, True)
            except Exception:  # a bug costs this connection, never the server
                self._log.exception("tcp", "TCP query from %s not answered", self._peer)
                reply = None
            if reply is None:
                # RFC 7766 §6.2.4: a framing or header error leaves the stream unusable.
                transport.writelines(replies)
                self.close()
                return
            replies.append(len(reply).to_bytes(2, "big") + reply)
        if replies:
            transport.writelines(replies)  # may pause us (pause_writing) at once
        if self._paused or self._turn_pending:
            return  # that deadline stands / the next turn sets it
        if not buffer:
            self._wait(self._idle_timeout)
        elif began_empty or replies:
            self._wait(self._io_timeout)  # a new query began: it must arrive whole in time
        # else: more bytes of the query already timed; a trickle does not extend it

    def _next_turn(self) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if not self._paused:
            self._transport.resume_reading()
        self._answer_some()

    def pause_writing(self) -> None:
        self._paused = True
        if self._transport is not None:
            self._transport.pause_reading()
        self._wait(self._io_timeout)

    def resume_writing(self) -> None:
        self._paused = False
        if self._transport is None:
            return
        if not self._turn_pending:
            self._transport.resume_reading()
            self._answer_some()
            if not self._buffer and not self._turn_pending:
                self._wait(self._idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if self._admitted:
            self._connections.remove(self, self._peer)


@dataclass(frozen=True, slots=True)
class Bound:
    host: str
    port: int


class DnsServer:
    """UDP and TCP on each listen address (the same port for both).

    `cached(wire)`, when given, is tried first for UDP queries and answers the common ones
    without the peer's address (which then need not be made), or returns None;
    `handle(wire, peer, tcp)` answers the rest, and every TCP query; `limit`, when given,
    filters UDP replies (response rate limiting, gslb/dns/rrl.py).
    """

    def __init__(
        self,
        handle: Handler,
        listen: Sequence[HostPort],
        *,
        cached: Cached | None = None,
        tcp_idle_timeout: float = 10.0,
        tcp: TcpSettings | None = None,
        limit: Limit | None = None,
        reuse_port: bool = False,
    ) -> None:
        self._handle = handle
        self._cached = cached
        self._listen = tuple(listen)
        self._idle = tcp_idle_timeout
        self._reuse_port = reuse_port
        self._udp: list[UdpListener] = []
        self._tcp: list[asyncio.Server] = []
        self._limit = limit  # UDP only: TCP is where a limited client is answered
        self.tcp = TcpConnections(tcp if tcp is not None else TcpSettings())
        self._tcp_log = RateLog(log)
        self.bound: list[Bound] = []

    async def start(self) -> list[Bound]:
        for hp in self._listen:
            # Port 0 picks a free UDP port; TCP may have it taken, so then pick again.
            attempts = 20 if hp.port == 0 else 1
            for attempt in range(attempts):
                try:
                    await self._bind(hp)
                    break
                except OSError:
                    if attempt == attempts - 1:
                        raise
        return self.bound

    async def _bind(self, hp: HostPort) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in hp.host else socket.AF_INET
        sock = udp_socket(hp.host, hp.port, self._reuse_port)
        udp = UdpListener(sock, self._handle, self._cached, self._limit)
        port = udp.sock.getsockname()[1]
        try:
            server = await loop.create_server(
                lambda: TcpProtocol(
                    self._handle,
                    self._cached,
                    self._idle,
                    self.tcp,
                    self._tcp_log,
                    self._drain_udp,
                ),
                host=hp.host,
                port=port,
                family=family,
                reuse_address=True,
                reuse_port=self._reuse_port or None,
            )
        except OSError:
            udp.close()
            raise
        udp.start(loop)
        self._udp.append(udp)
        self._tcp.append(server)
        self.bound.append(Bound(hp.host, port))

    def _drain_udp(self) -> None:
        for udp in self._udp:
            udp.drain_now()

    async def close(self) -> None:
        for udp in self._udp:
            udp.close()
        for server in self._tcp:
            server.close()
        for connection in list(self.tcp.open):
            connection.close()
        for server in self._tcp:
            await server.wait_closed()
        self._udp.clear()
        self._tcp.clear()
