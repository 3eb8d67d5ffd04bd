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
paused while a slow reader has not taken its replies.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from gslb.dns import mmsg
from gslb.model import HostPort
from gslb.ratelog import RateLog

log = logging.getLogger(__name__)

Handler = Callable[[bytes, str, bool], bytes | None]
Cached = Callable[[bytes], bytes | None]
MAX_TCP_CONNECTIONS = 4096
UDP_SOCKET_BUFFER = 4 << 20
UDP_BATCH = 256  # datagrams answered per wakeup before other callbacks get a turn
MAX_UDP_QUERY = 4096  # bytes read per datagram: longer ones are cut, and get FORMERR


class UdpListener:
    """One bound UDP socket, drained by the event loop's reader callback."""

    def __init__(self, sock: socket.socket, handle: Handler, cached: Cached | None) -> None:
        self.sock = sock
        self._handle = handle
        self._cached = cached
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log = RateLog(log)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if mmsg.available():
            batched = mmsg.BatchedUdp(self.sock, self._handle, self._cached, MAX_UDP_QUERY)
            loop.add_reader(self.sock.fileno(), batched.drain, UDP_BATCH // mmsg.BATCH)
        else:
            loop.add_reader(self.sock.fileno(), self._drain)

    def _drain(self) -> None:
        recv = self.sock.recvfrom
        send = self.sock.sendto
        handle = self._handle
        cached = self._cached or (lambda wire: None)
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
            if reply is None:
                continue
            try:
                send(reply, addr)
            except (BlockingIOError, InterruptedError):
                pass  # the send buffer is full: drop the reply, the client retries
            except OSError as exc:
                log.debug("UDP send error to %s: %s", addr[0], exc)

    def close(self) -> None:
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


class TcpProtocol(asyncio.Protocol):
    def __init__(
        self,
        handle: Handler,
        idle_timeout: float,
        registry: set[TcpProtocol],
        ratelog: RateLog,
    ) -> None:
        self._handle = handle
        self._log = ratelog
        self._idle_timeout = idle_timeout
        self._registry = registry
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._peer = ""
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if len(self._registry) >= MAX_TCP_CONNECTIONS:
            self._transport.abort()
            return
        self._registry.add(self)
        peer = self._transport.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else ""
        self._arm_idle()

    def _arm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(self._idle_timeout, self.close)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._arm_idle()
        while len(self._buffer) >= 2:
            size = int.from_bytes(self._buffer[:2], "big")
            if len(self._buffer) < 2 + size:
                break
            message = bytes(self._buffer[2 : 2 + size])
            del self._buffer[: 2 + size]
            try:
                reply = self._handle(message, self._peer, True)
            except Exception:  # a bug costs this connection, never the server
                self._log.exception("tcp", "TCP query from %s not answered", self._peer)
                reply = None
            if reply is None:
                # RFC 7766 §6.2.4: a framing or header error leaves the stream unusable.
                self.close()
                return
            assert self._transport is not None
            self._transport.write(len(reply).to_bytes(2, "big") + reply)

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._registry.discard(self)


@dataclass(frozen=True, slots=True)
class Bound:
    host: str
    port: int


class DnsServer:
    """UDP and TCP on each listen address (the same port for both).

    `cached(wire)`, when given, is tried first for UDP queries and answers the common ones
    without the peer's address (which then need not be made), or returns None;
    `handle(wire, peer, tcp)` answers the rest, and every TCP query.
    """

    def __init__(
        self,
        handle: Handler,
        listen: Sequence[HostPort],
        *,
        cached: Cached | None = None,
        tcp_idle_timeout: float = 10.0,
        reuse_port: bool = False,
    ) -> None:
        self._handle = handle
        self._cached = cached
        self._listen = tuple(listen)
        self._idle = tcp_idle_timeout
        self._reuse_port = reuse_port
        self._udp: list[UdpListener] = []
        self._tcp: list[asyncio.Server] = []
        self._connections: set[TcpProtocol] = set()
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
        udp = UdpListener(sock, self._handle, self._cached)
        port = udp.sock.getsockname()[1]
        try:
            server = await loop.create_server(
                lambda: TcpProtocol(self._handle, self._idle, self._connections, self._tcp_log),
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

    async def close(self) -> None:
        for udp in self._udp:
            udp.close()
        for server in self._tcp:
            server.close()
        for connection in list(self._connections):
            connection.close()
        for server in self._tcp:
            await server.wait_closed()
        self._udp.clear()
        self._tcp.clear()
