"""UDP and TCP transports for the responder: they move bytes and nothing else.

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

from gslb.model import HostPort

log = logging.getLogger(__name__)

Handler = Callable[[bytes, str, bool], bytes | None]
MAX_TCP_CONNECTIONS = 4096
# A burst of queries larger than the default receive buffer (about 250 datagrams) would be
# dropped by the kernel while the loop is busy; ask for more (capped by net.core.rmem_max).
UDP_RECEIVE_BUFFER = 4 << 20


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, handle: Handler) -> None:
        self._handle = handle
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        reply = self._handle(data, str(addr[0]), False)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class TcpProtocol(asyncio.Protocol):
    def __init__(self, handle: Handler, idle_timeout: float, registry: set[TcpProtocol]) -> None:
        self._handle = handle
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
            reply = self._handle(message, self._peer, True)
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


def _enlarge_receive_buffer(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < UDP_RECEIVE_BUFFER:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
    except OSError as exc:
        log.debug("cannot enlarge the UDP receive buffer: %s", exc)


@dataclass(frozen=True, slots=True)
class Bound:
    host: str
    port: int


class DnsServer:
    """UDP and TCP on each listen address (the same port for both)."""

    def __init__(
        self,
        handle: Handler,
        listen: Sequence[HostPort],
        *,
        tcp_idle_timeout: float = 10.0,
        reuse_port: bool = False,
    ) -> None:
        self._handle = handle
        self._listen = tuple(listen)
        self._idle = tcp_idle_timeout
        self._reuse_port = reuse_port
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: list[asyncio.Server] = []
        self._connections: set[TcpProtocol] = set()
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
        transport, _ = await loop.create_datagram_endpoint(
            lambda: UdpProtocol(self._handle),
            local_addr=(hp.host, hp.port),
            family=family,
            reuse_port=self._reuse_port or None,
        )
        _enlarge_receive_buffer(transport)
        port = transport.get_extra_info("sockname")[1]
        try:
            server = await loop.create_server(
                lambda: TcpProtocol(self._handle, self._idle, self._connections),
                host=hp.host,
                port=port,
                family=family,
                reuse_address=True,
                reuse_port=self._reuse_port or None,
            )
        except OSError:
            transport.close()
            raise
        self._udp.append(transport)
        self._tcp.append(server)
        self.bound.append(Bound(hp.host, port))

    async def close(self) -> None:
        for transport in self._udp:
            transport.close()
        for server in self._tcp:
            server.close()
        for connection in list(self._connections):
            connection.close()
        for server in self._tcp:
            await server.wait_closed()
        self._udp.clear()
        self._tcp.clear()
