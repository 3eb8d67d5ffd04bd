"""The traffic port's accept loop: ours, not asyncio.Server's, so that it can stop accepting.

At `max_connections` open client connections the listener stops reading the listening
socket: new connections wait in the kernel's backlog (the client's connect() completes, its
request is read once a slot frees) instead of each costing a file descriptor, and the process
never runs out of them (the admin port, a separate server, keeps answering). Each pause is
counted (`gslb_proxy_accept_paused_total`) and logged, at most once per LOG_EVERY seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

from gslb.model import HostPort

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


class Listener:
    """Accepts up to `limit()` connections at once; `closed_one()` when one of them closed."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        factory: Callable[[], asyncio.Protocol],
        limit: Callable[[], int],
        on_pause: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._sock: socket.socket | None = sock
        self._factory = factory
        self._limit = limit
        self._on_pause = on_pause
        self._open = 0
        self._reading = False
        self._retry: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_log = -LOG_EVERY
        self._unlogged = 0
        self.sockets = [sock]
        self._start_reading()

    @property
    def accepting(self) -> bool:
        """False while at the cap, backing off, or closed."""
        return self._reading

    @property
    def open(self) -> int:
        return self._open

    def _start_reading(self) -> None:
        if not self._reading and self._sock is not None:
            self._reading = True
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def _stop_reading(self) -> None:
        if self._reading and self._sock is not None:
            self._reading = False
            self._loop.remove_reader(self._sock.fileno())

    def _accept(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(ACCEPT_BATCH):
            if self._open >= self._limit():
                self._pause()
                return
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # out of file descriptors, or the like: back off a little
                self._warn(f"accept failed: {e}; trying again in {RETRY_AFTER}s")
                self._stop_reading()
                if self._retry is None:
                    self._retry = self._loop.call_later(RETRY_AFTER, self._retry_accept)
                return
            self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._open += 1
        task = self._loop.create_task(self._connect(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError:
            conn.close()
            self.closed_one()

    def _retry_accept(self) -> None:
        self._retry = None
        self.recheck()

    def _pause(self) -> None:
        self._stop_reading()
        self._on_pause()
        limit = self._limit()
        self._warn(f"max_connections ({limit}) reached: not accepting until a connection closes")

    def _warn(self, message: str) -> None:
        """Log `message` at most once per LOG_EVERY seconds (the rest are only counted)."""
        now = self._loop.time()
        if now - self._last_log >= LOG_EVERY:
            also = f" ({self._unlogged} more times since)" if self._unlogged else ""
            log.warning("%s%s", message, also)
            self._last_log = now
            self._unlogged = 0
        else:
            self._unlogged += 1

    def closed_one(self) -> None:
        self._open -= 1
        self.recheck()

    def recheck(self) -> None:
        """Accept again when below the cap (after a close, or a reload that raised it)."""
        if (
            self._sock is not None
            and not self._reading
            and self._retry is None
            and self._open < self._limit()
        ):
            self._start_reading()

    def close(self) -> None:
        """Stop listening: the socket closes (connections already accepted stay).

        Connections the kernel has queued for this socket would be reset by the close, so
        they are accepted first, whatever the cap, and served as the drain serves any
        (answered with `Connection: close`). Beside a new process on the same port
        (SO_REUSEPORT), the kernel sends later connections there.
        """
        self._stop_reading()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._sock is not None:
            self._accept_queued(self._sock)
            self._sock.close()
            self._sock = None

    async def settled(self) -> None:
        """Returns once every accepted connection has its protocol (is in `connections`),
        so a drain that waits for them all waits for these too."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _accept_queued(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:  # nothing queued (BlockingIOError), or out of descriptors
                return
            self._serve(conn)
