"""The client side of the proxy: a raw asyncio protocol parsing requests with httptools.

One `ClientConnection` per accepted connection. It parses requests as bytes arrive, checks
the header limits, and hands each request to an `Exchange`; requests pipelined behind the one
in progress wait their turn (reading pauses meanwhile). It also owns the client-side timers:
`client_timeout` to receive a request's head (a slowloris gets 408 and is closed) and
`idle_timeout` between keep-alive requests. Malformed input gets 400 and a close; nothing a
client sends can take the proxy down. Whether the connection still reads requests, is
answering its last one, is becoming or is a tunnel, or is closed is one `Conn` state moved
only through the table of gslb.proxy.connection_state.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import cast

from httptools import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserUpgrade,
    HttpRequestParser,
)

from gslb.proxy import headers as hdr
from gslb.proxy.accesslog import request_id
from gslb.proxy.backends import BackendState
from gslb.proxy.connection_state import (
    CLOSE,
    CONN_TRANSITIONS,
    OPEN,
    READING,
    STOP,
    SWITCH,
    UPGRADE,
    UPGRADING,
    Conn,
)
from gslb.proxy.exchange import Exchange
from gslb.proxy.head import REQUEST, Head, Reject
from gslb.proxy.lifecycle import IDLE, IllegalTransition
from gslb.proxy.shared import Shared
from gslb.proxy.tunnel import Tunnel
from gslb.proxy.upstream import UpstreamConnection

PAUSE_PIPELINE = 4  # a request waits behind the one in progress


class ClientConnection(asyncio.Protocol):
    __slots__ = (
        "_active",
        "_deadline",
        "_deadline_is_idle",
        "_head",
        "_leftover",
        "_parser",
        "_parsing",
        "_paused",
        "_queue",
        "_raw_head",
        "_tunnel",
        "client_ip",
        "on_header",
        "on_url",
        "proto",
        "shared",
        "state",
        "transport",
    )

    def __init__(self, shared: Shared, proto: bytes = b"http") -> None:
        self.shared = shared
        self.transport: asyncio.Transport | None = None
        self.client_ip = ""
        self.proto = proto  # the X-Forwarded-Proto of its requests: b"http" or b"https"
        self._head = head = Head(REQUEST)
        # The parser calls the head's own methods for the target and each header (it looks
        # them up on this object once, when it is made): one Python call per header.
        self.on_url = head.on_url
        self.on_header = head.on_header
        self._parser = HttpRequestParser(self)
        self._parsing: Exchange | None = None  # the request the parser is reading
        self._active: Exchange | None = None  # the request being answered
        self._queue: deque[Exchange] = deque()  # pipelined requests, complete heads
        self._raw_head = 0
        self._paused = 0
        # Where the connection is in its life (connection_state.py): moved only through
        # CONN_TRANSITIONS; the exchange's own life is apart (lifecycle.py).
        self.state: Conn = OPEN
        # Client-side timeout: a clock time checked by the server's sweep (0.0: none). Cheaper
        # than a timer handle armed and cancelled for every request.
        self._deadline = 0.0
        self._deadline_is_idle = False
        self._leftover = b""  # bytes after an Upgrade request's head: for the tunnel
        self._tunnel: Tunnel | None = None  # after a 101: the bytes go there

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.client_ip = str(peer[0]) if peer else ""
        self.shared.connections.add(self)
        self.shared.stats.client_connections += 1
        if self.shared.draining:  # accepted as the listener closed: a grace, like the others
            self._arm(self.shared.drain_close_delay(), idle=True)
        else:
            self._arm(self.shared.snapshot.spec.client_timeout, idle=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.shared.forget(self)
        self.shared.stats.client_connections -= 1
        self._cancel_timer()
        self.transport = None
        self.state = CONN_TRANSITIONS[self.state, CLOSE]
        if self._tunnel is not None:
            self._tunnel.client_closed()
        if self._active is not None:
            active, self._active = self._active, None
            active.abandon()
        while self._queue:
            self._queue.popleft().abandon()

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel.from_client(data)
            return
        if self.state is not OPEN:
            return
        if self._deadline_is_idle:
            self._cancel_timer()
        parsing = self._parsing  # in a head while its exchange is IDLE (lifecycle.py)
        counting = parsing is None or parsing.state is IDLE
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade as e:
            # The request is complete and nothing more is parsed: after a 101 the rest goes
            # through the tunnel (start_tunnel); any other answer closes the connection.
            self._leftover = data[e.args[0] :]
            self._parser = HttpRequestParser(self)
            self.state = CONN_TRANSITIONS[self.state, UPGRADE]
            self._pause(PAUSE_PIPELINE)
            if self._active is None:
                self.close()
            return
        except HttpParserCallbackError as e:
            cause = e.__context__
            if isinstance(cause, IllegalTransition):
                raise cause from None  # the proxy's own bug, not a bad request: the loop logs it
            if isinstance(cause, Reject):
                self._reject(cause.status, cause.reason, cause.message)
            else:
                self._reject(400, "Bad Request", "malformed request")
            return
        except HttpParserError:
            self._reject(400, "Bad Request", "malformed request")
            return
        parsing = self._parsing
        if parsing is not None and parsing.state is IDLE:
            if counting:
                self._raw_head += len(data)
            if self._raw_head > self.shared.snapshot.spec.max_header_bytes:
                self._reject(431, "Request Header Fields Too Large", "request head too large")
                return
            if self._deadline == 0.0:
                self._arm(self.shared.snapshot.spec.client_timeout, idle=False)

    def pause_writing(self) -> None:
        if self._tunnel is not None:
            self._tunnel.client_pause_writing()
        elif self._active is not None:
            self._active.client_pause()

    def resume_writing(self) -> None:
        if self._tunnel is not None:
            self._tunnel.client_resume_writing()
        elif self._active is not None:
            self._active.client_resume()

    def eof_received(self) -> bool | None:
        # Like nginx: a client that closes its side has given up on the answer (a half-close
        # cannot be told apart from a close until a write fails), so the request is abandoned.
        self.state = CONN_TRANSITIONS[self.state, STOP]
        return False

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._parsing = Exchange(self, self.shared)
        spec = self.shared.snapshot.spec
        self._head.reset_request(spec.max_header_bytes, spec.max_headers)

    def on_headers_complete(self) -> None:
        exchange = self._parsing
        assert exchange is not None
        self._raw_head = 0
        if self._deadline != 0.0 and not self._deadline_is_idle:
            self._cancel_timer()
        parser = self._parser
        method = parser.get_method()
        if method == b"CONNECT":
            raise Reject(405, "Method Not Allowed", "CONNECT is not supported")
        http11 = parser.get_http_version() != "1.0"
        head = self._head
        if http11 and not head.has_host:  # RFC 9112 §3.2; HTTP/1.0 may leave it out
            raise Reject(400, "Bad Request", "Host header required")
        # An Upgrade header that Connection does not name is not a request to switch.
        upgrade = head.upgrade if head.upgrade and hdr.wants_upgrade(head.connection) else None
        keep_alive = parser.should_keep_alive() and self.state is OPEN
        exchange.set_head(method, head, http11, keep_alive, upgrade)
        if self._active is None:
            self._start(exchange)
        else:
            self._queue.append(exchange)
            self._pause(PAUSE_PIPELINE)

    def on_body(self, body: bytes) -> None:
        if self._parsing is not None:
            self._parsing.request_body(body)

    def on_message_complete(self) -> None:
        exchange = self._parsing
        self._parsing = None
        if exchange is not None:
            exchange.request_end()

    # -- used by exchanges ----------------------------------------------------------------------

    def _start(self, exchange: Exchange) -> None:
        self._active = exchange
        if self._head.expect_continue and exchange is self._parsing and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        exchange.begin()

    def exchange_done(self, exchange: Exchange, keep_alive: bool) -> None:
        if exchange is not self._active:
            return
        self._active = None
        # While draining, an answer that still said keep-alive (its head went out before the
        # drain began) does not close the connection: the client may be writing its next
        # request right now. That one is answered with Connection: close (see drain()).
        if not keep_alive or (self.state is not OPEN and not self._queue):
            self.close()
            return
        if self._queue:
            # The next pipelined request starts on the next loop turn, after this one's
            # callbacks have unwound (its backend connection may be the one just released).
            self.shared.loop.call_soon(self._next)
            return
        self._resume(PAUSE_PIPELINE)
        if self._parsing is None:
            if self.shared.draining:
                self._arm(self.shared.drain_close_delay(), idle=True)
            else:
                self._arm(self.shared.snapshot.spec.idle_timeout, idle=True)

    def start_tunnel(
        self, exchange: Exchange, conn: UpstreamConnection, backend: BackendState | None
    ) -> None:
        """The backend switched protocols (its 101 is written): relay bytes from now on,
        unless the connection is no longer waiting for that (closed in this very loop turn,
        before the transport reported it lost)."""
        if exchange is not self._active or self.transport is None or self.state is not UPGRADING:
            conn.close()
            if backend is not None:
                backend.in_flight -= 1
            return
        self._active = None
        self._queue.clear()
        self.state = CONN_TRANSITIONS[self.state, SWITCH]
        self._cancel_timer()
        tunnel = self._tunnel = Tunnel(self, conn, backend, self.shared)
        leftover, self._leftover = self._leftover, b""
        if leftover:
            tunnel.from_client(leftover)
        self._resume(PAUSE_PIPELINE)

    def _next(self) -> None:
        if self._active is not None or not self._queue or self.transport is None:
            return
        exchange = self._queue.popleft()
        if not self._queue:
            self._resume(PAUSE_PIPELINE)
        self._start(exchange)

    def pause(self, reason: int) -> None:
        self._pause(reason)

    def resume(self, reason: int) -> None:
        self._resume(reason)

    def _pause(self, reason: int) -> None:
        if self._paused == 0 and self.transport is not None:
            self.transport.pause_reading()
        self._paused |= reason

    def _resume(self, reason: int) -> None:
        if self._paused & reason:
            self._paused &= ~reason
            if self._paused == 0 and self.transport is not None and self.state in READING:
                self.transport.resume_reading()

    # -- closing ----------------------------------------------------------------------------------

    def drain(self) -> None:
        """The proxy is draining. Nothing is closed under a request that may be on the wire:
        the next answer on this connection says `Connection: close` and the connection closes
        after it (exchange.py); an idle one is closed after the drain grace (spread out, see
        Shared.drain_close_delay) unless a request arrives first, which is then answered so.
        A tunnel stays open until it ends or the drain timeout cuts it."""
        if self._tunnel is not None:
            return
        if self._active is None and self._parsing is None:
            delay = self.shared.drain_close_delay()
            deadline = self.shared.loop.time() + delay
            if not (self._deadline_is_idle and 0.0 < self._deadline < deadline):
                self._arm(delay, idle=True)

    def close(self) -> None:
        self.state = CONN_TRANSITIONS[self.state, CLOSE]
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.state = CONN_TRANSITIONS[self.state, CLOSE]
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()

    def _reject(self, status: int, reason: str, message: str) -> None:
        """Refuse what the parser is reading: answer it if nothing else is, then close."""
        self.state = CONN_TRANSITIONS[self.state, STOP]
        parsing, self._parsing = self._parsing, None
        self._pause(PAUSE_PIPELINE)
        active = self._active
        if active is not None and parsing is active:
            active.request_failed(status, reason, message)  # a bad body of the request in hand
            return
        self.shared.stats.count_request("-", status, 0.0)
        self._log_refused(status, len(message) + 1)
        if active is None and self.transport is not None:
            self.transport.write(hdr.error_response(status, reason, message))
            self.close()

    def _log_refused(self, status: int, size: int) -> None:
        """The access log line of a request refused before it had an exchange."""
        access_log = self.shared.access_log
        if access_log is None:
            return
        parser = self._parser
        head = self._head
        method = parser.get_method() if head.url else b""  # known once the target began
        version = parser.get_http_version()
        version = "HTTP/1.1" if version == "0.0" else "HTTP/" + version
        access_log.log(
            (
                time.time(),
                self.client_ip,
                method,
                head.host,
                head.url,
                version,
                status,
                size,
                0.0,
                "-",
                0,
                request_id(head.request_id),
                head.referer,
                head.user_agent,
            )
        )

    # -- timers -----------------------------------------------------------------------------------

    def _arm(self, delay: float, idle: bool) -> None:
        self._deadline_is_idle = idle
        self._deadline = self.shared.loop.time() + delay

    def _cancel_timer(self) -> None:
        self._deadline = 0.0
        self._deadline_is_idle = False

    def check(self, now: float) -> None:
        """The server's sweep: enforce this connection's timeouts and its request's."""
        if self._tunnel is not None:
            self._tunnel.check(now)
            return
        active = self._active
        if active is not None:
            active.check(now)
        deadline = self._deadline
        if deadline != 0.0 and now >= deadline:
            self._timeout()

    def _timeout(self) -> None:
        idle = self._deadline_is_idle
        self._cancel_timer()
        if idle:
            self.close()  # idle keep-alive connection: close quietly
            return
        if self._active is not None:
            # a slow pipelined head: finish the answer in progress, then go
            self.state = CONN_TRANSITIONS[self.state, STOP]
            return
        self.shared.stats.count_request("-", 408, 0.0)
        self._log_refused(408, len("request too slow") + 1)
        if self.transport is not None:
            self.transport.write(hdr.error_response(408, "Request Timeout", "request too slow"))
        self.close()
