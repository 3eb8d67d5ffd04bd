"""The traffic ports' accept loop: ours, not asyncio.Server's, so that it can stop accepting.

One `Listener` serves the plain port and, when configured, the TLS port (each a `Door`); the
connections of both count against one `max_connections`, and closing the listener (draining)
closes both. At the cap the listener stops reading the listening sockets: new connections
wait in the kernel's backlog (the client's connect() completes, its request is read once a
slot frees) instead of each costing a file descriptor, and the process never runs out of
them (the admin port, a separate server, keeps answering). Each pause is counted
(`gslb_proxy_accept_paused_total`) and logged, at most once per LOG_EVERY seconds.

A TLS door wraps each connection in the context its `tls()` returns at accept time (a reload
swaps it; connections already open keep theirs). A reload may also add a door or take one
away (`proxy.tls` added, removed or moved): a door taken away is closed as a drain closes
them all, its queued connections accepted first, and its open connections stay. Every
handshake's outcome is counted (`on_handshake`); a failed one is the client's business,
logged at most once per LOG_EVERY seconds per kind of failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from gslb.model import HostPort
from gslb.proxy.tls import ServerTls, handshake_failure
from gslb.ratelog import RateLog

log = logging.getLogger(__name__)

ACCEPT_BATCH = 64  # connections accepted per readiness callback
LOG_EVERY = 60.0  # seconds between "max_connections reached" messages
RETRY_AFTER = 0.1  # accept() failed (EMFILE...): try again after this long


def bind(address: HostPort, backlog: int = 1024) -> socket.socket:
    """A non-blocking listening TCP socket on `address` (port 0: the kernel picks)."""
    host = address.host or None
    family, kind, proto, _, sockaddr = socket.getaddrinfo(
        host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            # A new `gslb proxy` can listen beside this one before it drains (a restart
            # without a moment in which nothing listens), as HAProxy and nginx do.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass(frozen=True, slots=True)
class Door:
    """One listening socket: the protocol its connections get, and for TLS the current
    certificates."""

    sock: socket.socket
    factory: Callable[[], asyncio.Protocol]
    tls: Callable[[], ServerTls] | None = None


class Listener:
    """Accepts up to `limit()` connections at once over all its doors; `closed_one()` when
    one of them closed."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        doors: list[Door],
        limit: Callable[[], int],
        on_pause: Callable[[], None],
        on_handshake: Callable[[str], None] = lambda result: None,
    ) -> None:
        self._loop = loop
        self._doors = doors
        self._limit = limit
        self._on_pause = on_pause
        self._on_handshake = on_handshake
        self._open = 0
        self._reading = False
        self._closed = False
        self._retry: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Pauses, accept failures and failed handshakes: one line per kind per LOG_EVERY s.
        self._log = RateLog(log, interval=LOG_EVERY, clock=loop.time)
        self.sockets = [door.sock for door in doors]
        self._start_reading()

    def add_door(self, door: Door) -> None:
        """Serve one more listening socket (read at once unless at the cap or closed)."""
        if self._closed:
            door.sock.close()
            return
        self._doors.append(door)
        self.sockets.append(door.sock)
        if self._reading:
            self._loop.add_reader(door.sock.fileno(), self._accept, door)

    def remove_door(self, sock: socket.socket) -> None:
        """Stop serving `sock`: what the kernel queued for it is accepted, then it closes;
        the connections it let in stay open."""
        door = next(d for d in self._doors if d.sock is sock)
        self._doors.remove(door)
        self.sockets.remove(sock)
        if self._reading:
            self._loop.remove_reader(sock.fileno())
        if not self._closed:
            self._accept_queued(door)
            sock.close()

    @property
    def accepting(self) -> bool:
        """False while at the cap, backing off, or closed."""
        return self._reading

    @property
    def open(self) -> int:
        return self._open

    def _start_reading(self) -> None:
        if not self._reading and not self._closed:
            self._reading = True
            for door in self._doors:
                self._loop.add_reader(door.sock.fileno(), self._accept, door)

    def _stop_reading(self) -> None:
        if self._reading and not self._closed:
            self._reading = False
            for door in self._doors:
                self._loop.remove_reader(door.sock.fileno())

    def _accept(self, door: Door) -> None:
        if self._closed:
            return
        sock = door.sock
        for _ in range(ACCEPT_BATCH):
            if self._open >= self._limit():
                self._pause()
                return
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # out of file descriptors, or the like: back off a little
                message = "accept failed: %s; trying again in %ss"
                self._log.warning("accept", message, e, RETRY_AFTER)
                self._stop_reading()
                if self._retry is None:
                    self._retry = self._loop.call_later(RETRY_AFTER, self._retry_accept)
                return
            self._serve(conn, door)

    def _serve(self, conn: socket.socket, door: Door) -> None:
        conn.setblocking(False)
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._open += 1
        connect = self._connect(conn, door) if door.tls is None else self._handshake(conn, door)
        task = self._loop.create_task(connect)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: socket.socket, door: Door) -> None:
        try:
            await self._loop.connect_accepted_socket(door.factory, conn)
        except OSError:
            conn.close()
            self.closed_one()

    async def _handshake(self, conn: socket.socket, door: Door) -> None:
        assert door.tls is not None
        tls = door.tls()
        started = self._loop.time()
        try:
            transport, _ = await self._loop.connect_accepted_socket(
                door.factory,
                conn,
                ssl=tls.context,
                ssl_handshake_timeout=tls.handshake_timeout,
                ssl_shutdown_timeout=tls.shutdown_timeout,
            )
        except Exception as e:  # whatever the client did, its slot is freed
            conn.close()
            self.closed_one()
            timed_out = self._loop.time() - started >= tls.handshake_timeout
            result = "timeout" if timed_out else handshake_failure(e)
            self._on_handshake(result)
            self._log.log(
                logging.INFO,
                result,
                "TLS handshake failed (%s): %s",
                result,
                str(e) or type(e).__name__,
            )
            return
        sslobj = transport.get_extra_info("ssl_object")
        reused = isinstance(sslobj, ssl.SSLObject | ssl.SSLSocket) and sslobj.session_reused
        self._on_handshake("resumed" if reused else "ok")

    def _retry_accept(self) -> None:
        self._retry = None
        self.recheck()

    def _pause(self) -> None:
        self._stop_reading()
        self._on_pause()
        limit = self._limit()
        message = "max_connections (%d) reached: not accepting until a connection closes"
        self._log.warning("max_connections", message, limit)

    def closed_one(self) -> None:
        self._open -= 1
        self.recheck()

    def recheck(self) -> None:
        """Accept again when below the cap (after a close, or a reload that raised it)."""
        if (
            not self._closed
            and not self._reading
            and self._retry is None
            and self._open < self._limit()
        ):
            self._start_reading()

    def abort(self) -> None:
        """Close, and drop the connections accepted but not yet handed over (in a TLS
        handshake)."""
        self.close()
        for task in list(self._tasks):
            task.cancel()

    def close(self) -> None:
        """Stop listening: the sockets close (connections already accepted stay).

        Connections the kernel has queued for a socket would be reset by the close, so
        they are accepted first, whatever the cap, and served as the drain serves any
        (answered with `Connection: close`). Beside a new process on the same port
        (SO_REUSEPORT), the kernel sends later connections there.
        """
        self._stop_reading()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if not self._closed:
            self._closed = True
            for door in self._doors:
                self._accept_queued(door)
                door.sock.close()

    async def settled(self) -> None:
        """Returns once every accepted connection has its protocol (is in `connections`),
        so a drain that waits for them all waits for these too (a TLS one once its handshake
        is over, or failed: at most handshake_timeout)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _accept_queued(self, door: Door) -> None:
        while True:
            try:
                conn, _ = door.sock.accept()
            except OSError:  # nothing queued (BlockingIOError), or out of descriptors
                return
            self._serve(conn, door)
