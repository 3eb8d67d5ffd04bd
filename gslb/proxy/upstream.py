"""Connections to backends: a raw asyncio protocol parsing responses with httptools, and the
keep-alive pool that hands idle ones out again.

One `UpstreamConnection` carries one request at a time. The request side (`gslb.proxy.exchange`)
writes the head and body and receives the response through the `ResponseSink` calls; the
connection tells it when its own write buffer is full so that it stops reading the client
(flow control), and whether any byte of a response arrived before a failure (which decides
whether a retry is safe).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from gslb.proxy import headers as hdr
from gslb.proxy.backends import BackendState
from gslb.proxy.head import RESPONSE, Head
from gslb.proxy.lifecycle import IllegalTransition
from gslb.proxy.stats import ProxyStats
from gslb.proxy.tls import BackendTls

if TYPE_CHECKING:
    from gslb.proxy.tunnel import Tunnel

Header = tuple[bytes, bytes]
MAX_IDLE_PER_BACKEND = 256
# A request that may not be retried (POST, PATCH) gets a new connection rather than one idle
# for longer than this: a backend closes idle keep-alive connections after its own timeout
# (2 s for gunicorn, 5 s for Node.js and Apache), and a request written just as it does is
# lost with no way to tell whether the backend acted on it. Idempotent requests reuse any
# idle connection and are retried elsewhere when that happens.
UNSAFE_REUSE_WITHIN = 1.0  # seconds


class ResponseSink(Protocol):
    """The request an upstream connection is serving."""

    def response_head(
        self,
        status: int,
        reason: bytes,
        pieces: list[bytes],
        connection: bytes | None,
        via: list[bytes],
        content_length: bytes | None,
        has_body: bool,
    ) -> None: ...
    def response_body(self, data: bytes) -> None: ...
    def flush(self) -> None: ...
    def response_end(self, reusable: bool) -> None: ...
    def upstream_failed(self, error: str, replied: bool) -> None: ...
    def upstream_pause(self) -> None: ...
    def upstream_resume(self) -> None: ...
    def response_switched(self, pieces: list[bytes], via: list[bytes], protocol: bytes) -> None:
        """The backend answered 101 to a request asking for `Upgrade` (see tunnel.py)."""
        ...


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "_close_delimited",
        "_head",
        "_head_request",
        "_in_body",
        "_parser",
        "_reset_parser",
        "_stats",
        "_upgrade",
        "backend",
        "closed",
        "idle_since",
        "last_io",
        "on_header",
        "pool",
        "reading_paused",
        "replied",
        "sink",
        "transport",
        "tunnel",
    )

    def __init__(self, pool: Pool, backend: BackendState, stats: ProxyStats) -> None:
        self.pool = pool
        self.backend = backend
        self._stats = stats
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.closed = False
        self.replied = False
        self.reading_paused = False
        self.last_io = 0.0
        self.idle_since = 0.0  # when the pool took it back
        self._head = Head(RESPONSE)
        self.on_header = self._head.on_header  # called by the parser itself (see head.py)
        self._parser = HttpResponseParser(self)
        self._reset_parser = False
        self._head_request = False
        self._close_delimited = False
        self._in_body = False
        self._upgrade = False  # the request asks for a protocol switch
        self.tunnel: Tunnel | None = None  # after a 101: the bytes go there

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        self._stats.upstream_connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
        self._stats.upstream_connections -= 1
        tunnel = self.tunnel
        if tunnel is not None:
            self.tunnel = None
            tunnel.backend_closed()
            return
        sink = self.sink
        if sink is None:
            return
        self.sink = None
        if self._close_delimited and self._in_body and exc is None:
            sink.response_end(False)  # a close-delimited body ends here
        else:
            sink.upstream_failed(str(exc) if exc else "backend closed the connection", self.replied)

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.from_backend(data)
            return
        self.replied = True
        self.last_io = self.pool.loop.time()
        if self.sink is None:
            self.close()  # bytes nobody asked for: this connection cannot be trusted
            return
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade as e:
            tunnel = self.tunnel
            if tunnel is None:
                self._fail("backend switched protocols unasked")
            elif len(data) > e.args[0]:
                tunnel.from_backend(data[e.args[0] :])
            return
        except HttpParserError as e:
            if isinstance(e.__context__, IllegalTransition):
                raise e.__context__ from None  # the proxy's own bug, not the backend's
            self._fail(f"bad response from backend: {e}")
            return
        sink = self.sink
        if sink is not None:
            sink.flush()

    def pause_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.backend_pause_writing()
        elif self.sink is not None:
            self.sink.upstream_pause()

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.backend_resume_writing()
        elif self.sink is not None:
            self.sink.upstream_resume()

    # -- used by the request side ---------------------------------------------------------------

    def send(
        self, sink: ResponseSink, head: bytes, head_request: bool, upgrade: bool = False
    ) -> None:
        """Start one request: `sink` receives its response (`upgrade`: it may be a 101)."""
        if self._reset_parser:
            self._parser = HttpResponseParser(self)
            self._reset_parser = False
        self.sink = sink
        self.replied = False
        self._head_request = head_request
        self._head.reset()
        self._close_delimited = False
        self._in_body = False
        self._upgrade = upgrade
        self.last_io = self.pool.loop.time()
        assert self.transport is not None
        self.transport.write(head)

    def write(self, data: bytes) -> None:
        """A piece of the request body (the read timeout counts from the last one)."""
        assert self.transport is not None
        self.last_io = self.pool.loop.time()
        self.transport.write(data)

    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.sink = None
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()

    def _fail(self, error: str) -> None:
        sink = self.sink
        self.sink = None
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        if sink is not None:
            sink.upstream_failed(error, self.replied)

    # -- httptools callbacks --------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        head = self._head
        switched = self.sink
        if status == 101 and self._upgrade and head.upgrade and switched is not None:
            self.sink = None
            switched.response_switched(head.pieces, head.via, head.upgrade)
            return
        if status < 200:
            # An interim answer (100, 103): not forwarded; the real one follows.
            head.reset()
            return
        no_body = self._head_request or status in (204, 304)
        if not no_body and head.content_length is None and not head.chunked:
            self._close_delimited = True
        self._in_body = True
        sink = self.sink
        if sink is None:
            return
        sink.response_head(
            status,
            hdr.reason(status),
            head.pieces,
            head.connection,
            head.via,
            head.content_length,
            not no_body,
        )
        if self._head_request and self.sink is sink:
            # httptools cannot be told that a HEAD answer has no body: end it here and start
            # the next response on a fresh parser.
            self._reset_parser = True
            self._finish(reusable=self._parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.response_body(body)

    def on_message_complete(self) -> None:
        if self._parser.get_status_code() < 200:
            return
        if self._head_request:
            return
        self._finish(reusable=self._parser.should_keep_alive())

    def _finish(self, reusable: bool) -> None:
        sink = self.sink
        self.sink = None
        self._in_body = False
        if sink is not None:
            sink.response_end(reusable and not self._close_delimited)


class Pool:
    """Idle keep-alive connections per backend, most recently used first, and new ones."""

    __slots__ = ("_idle", "_stats", "loop", "tls")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, stats: ProxyStats, tls: BackendTls | None = None
    ) -> None:
        self.loop = loop
        self._stats = stats
        self._idle: dict[BackendState, list[UpstreamConnection]] = {}
        self.tls = tls or BackendTls(())  # how https:// backends are reached; set on reload

    def take_idle(
        self, backend: BackendState, idle_at_most: float | None = None
    ) -> UpstreamConnection | None:
        """The most recently used idle connection to `backend`; with `idle_at_most`, only
        one idle for no longer than that (the others stay for requests that may reuse
        them)."""
        idle = self._idle.get(backend)
        while idle:
            conn = idle[-1]
            if conn.closed:
                idle.pop()
                continue
            if idle_at_most is not None and self.loop.time() - conn.idle_since > idle_at_most:
                return None  # the most recent is too old, so are the rest
            return idle.pop()
        return None

    def release(self, conn: UpstreamConnection) -> None:
        """Keep `conn` for the next request to its backend, or close it."""
        conn.sink = None
        if conn.closed:
            return
        conn.resume_reading()
        backend = conn.backend
        idle = self._idle.get(backend)
        if idle is None:
            idle = self._idle[backend] = []
        if backend.drained or len(idle) >= MAX_IDLE_PER_BACKEND:
            conn.close()
            return
        conn.idle_since = self.loop.time()
        idle.append(conn)

    def connect(
        self,
        backend: BackendState,
        timeout: float,
        done: Callable[[UpstreamConnection | None, str], None],
    ) -> asyncio.Task[None]:
        """Open a new connection in the background; `done(conn, "")` or `done(None, error)`."""
        return self.loop.create_task(self._connect(backend, timeout, done))

    async def _connect(
        self,
        backend: BackendState,
        timeout: float,
        done: Callable[[UpstreamConnection | None, str], None],
    ) -> None:
        spec = backend.backend
        context = self.tls.context(spec)
        try:
            async with asyncio.timeout(timeout):  # with the TLS handshake, if any
                _, proto = await self.loop.create_connection(
                    lambda: UpstreamConnection(self, backend, self._stats),
                    spec.host,
                    spec.port,
                    ssl=context,
                    server_hostname=spec.host if context is not None else None,
                )
        except TimeoutError:
            done(None, "timeout")
            return
        except OSError as e:
            done(None, f"connect failed: {e.strerror or e}")
            return
        done(proto, "")

    def close_idle(self, backend: BackendState | None = None) -> None:
        """Close idle connections (of one backend, or all)."""
        keys = [backend] if backend is not None else list(self._idle)
        for key in keys:
            for conn in self._idle.pop(key, []):
                conn.close()
