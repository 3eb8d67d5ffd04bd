"""One proxied request: pick a backend, stream the request to it, stream the answer back.

The client connection feeds the request in as its parser produces it (head, body pieces,
end); the upstream connection feeds the response in through the `ResponseSink` calls. Bodies
are never gathered: each piece is written on as it arrives, and when the side it goes to has a
full write buffer the side it comes from stops reading (pause_reading/resume_reading).

A connection that fails before any byte of the answer arrived is retried once on another
backend, for idempotent methods only, and only while the request body sent so far is still at
hand (up to REPLAY_LIMIT bytes). Other methods are sent on a pooled connection only when it
was idle for less than UNSAFE_REUSE_WITHIN (gslb.proxy.upstream), else on a new one.
Timeouts: connect (502 when nothing else can take it), read
between backend bytes and total per request (504 before the answer started, else the client
connection is cut, as nothing else can tell the client that the answer is incomplete).

Where an exchange is in its life (parsed, queued, connecting, awaiting the answer, relaying
it, done …) is one `State`, moved only through the transition table of gslb.proxy.lifecycle
(`TRANSITIONS`); whether the request's body has ended is kept apart (`_req_done`), as a backend
may answer before it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

from gslb.proxy import headers as hdr
from gslb.proxy.accesslog import request_id
from gslb.proxy.backends import BackendState
from gslb.proxy.head import Head
from gslb.proxy.lifecycle import (
    ABANDON,
    ANSWER,
    BEGIN,
    CONNECT,
    CUT,
    ENDED,
    HEAD,
    IDLE,
    QUEUE,
    QUEUED,
    RELAYING_RESPONSE,
    RESPONSE_END,
    RESPONSE_HEAD,
    RETRY,
    SEND,
    SWITCH,
    TRANSITIONS,
    State,
)
from gslb.proxy.passive import CLEAR
from gslb.proxy.routes import BackendGroup
from gslb.proxy.shared import Shared, Snapshot
from gslb.proxy.upstream import UNSAFE_REUSE_WITHIN, UpstreamConnection

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"})
REPLAY_LIMIT = 64 * 1024  # request body kept for a retry
PENDING_LIMIT = 256 * 1024  # request body buffered while connecting, before the client pauses

PAUSE_UPSTREAM = 1  # the backend's write buffer is full
PAUSE_PENDING = 2  # still connecting, and the buffer for the body is full

# How the request body goes to the backend / the response body to the client.
NO_BODY = 0
RAW = 1
CHUNKED = 2
CHUNK_END = b"0\r\n\r\n"


class ClientSide(Protocol):
    """What an exchange needs of the client connection it belongs to."""

    transport: asyncio.Transport | None
    client_ip: str
    proto: bytes  # b"http" or b"https": what the request came over (X-Forwarded-Proto)

    def pause(self, reason: int) -> None: ...
    def resume(self, reason: int) -> None: ...
    def exchange_done(self, exchange: Exchange, keep_alive: bool) -> None: ...
    def start_tunnel(
        self, exchange: Exchange, conn: UpstreamConnection, backend: BackendState | None
    ) -> None: ...
    def abort(self) -> None: ...


def wake(backend: BackendState) -> None:
    """Requests waiting for `backend` take its free slots, oldest first."""
    waiting = backend.waiting
    while waiting and not backend.full:
        waiting.popleft()._use(backend)


class Exchange:
    __slots__ = (
        "_attempts",
        "_backend",
        "_bytes_out",
        "_connecting",
        "_cookie",
        "_deadline",
        "_exclude",
        "_group",
        "_head",
        "_head_request",
        "_host",
        "_idempotent",
        "_last_name",
        "_method",
        "_out",
        "_pending",
        "_pending_bytes",
        "_queued_until",
        "_referer",
        "_replay",
        "_replay_bytes",
        "_req_done",
        "_req_mode",
        "_resp_mode",
        "_started",
        "_status",
        "_target",
        "_upgrade",
        "_upstream",
        "_user_agent",
        "_waiting_on",
        "client",
        "http11",
        "keep_alive",
        "request_id",
        "shared",
        "snap",
        "state",
    )

    def __init__(self, client: ClientSide, shared: Shared) -> None:
        self.client = client
        self.shared = shared
        self.snap: Snapshot = shared.snapshot
        # Where the exchange is in its life (lifecycle.py): moved only here, through `TRANSITIONS`;
        # the client connection reads it (IDLE: the head is still being parsed).
        self.state: State = IDLE
        self.http11 = True
        self.keep_alive = True
        self._started = shared.loop.time()
        self._head = b""
        self._method = b""
        self._target = b""
        self._host = b""
        self._referer = b""
        self._user_agent = b""
        self.request_id = b""
        self._bytes_out = 0
        self._head_request = False
        self._idempotent = False
        self._cookie: str | None = None
        self._req_mode = NO_BODY
        self._req_done = False
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._replay: list[bytes] | None = []
        self._replay_bytes = 0
        self._backend: BackendState | None = None
        self._upstream: UpstreamConnection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._attempts = 0
        self._last_name = "-"
        self._exclude = -1
        self._group: BackendGroup | None = None
        self._resp_mode = NO_BODY
        self._status = 0
        self._deadline = 0.0  # when the whole request must be done (0.0: not begun)
        self._waiting_on: BackendState | None = None  # queued for a backend at its cap
        self._queued_until = 0.0
        self._upgrade: bytes | None = None  # the protocol the client asks to switch to
        # Bytes for the client, written once per read from the backend (one send, not three).
        self._out: list[bytes] = []

    # -- the request, as the client connection parses it ------------------------------------

    def set_head(
        self, method: bytes, parsed: Head, http11: bool, keep_alive: bool, upgrade: bytes | None
    ) -> None:
        """The request's head as the client connection's parser collected it (head.py); its
        lists are consumed here (the connection resets `parsed` for its next request).
        `upgrade`: the protocol the client asks to switch to, when it really asks."""
        self.state = TRANSITIONS[self.state, HEAD]
        snap = self.snap
        target = parsed.url
        self._method = method
        self._target = target
        self._host = host = parsed.host  # these three for the access log
        self._referer = parsed.referer
        self._user_agent = parsed.user_agent
        sent = parsed.request_id  # the client's, kept when well-formed
        self.request_id = request_id(sent) if sent is not None else self.shared.request_ids.new()
        self.http11 = http11
        self.keep_alive = keep_alive
        self._head_request = method == b"HEAD"
        self._idempotent = method in IDEMPOTENT
        if not self._idempotent:
            self._replay = None
        content_length = parsed.content_length
        if parsed.chunked:
            self._req_mode = CHUNKED
            framing = b"Transfer-Encoding: chunked\r\n"
        elif content_length is not None:
            self._req_mode = RAW if content_length != b"0" else NO_BODY
            framing = b"Content-Length: " + content_length + b"\r\n"
        else:
            framing = b""
        self._group = snap.group(host, target)
        if upgrade is not None:
            # Passed on (hop-by-hop otherwise); an answer other than 101 ends the connection.
            self._upgrade = upgrade
            self.keep_alive = False
            framing += hdr.upgrade_head(upgrade)
        if snap.sticky_cookie is not None and parsed.cookies:
            self._cookie = hdr.cookie_value(parsed.cookies, snap.sticky_cookie)
        self._head = hdr.request_head(
            method,
            target,
            parsed.pieces,
            parsed.connection,
            parsed.forwarded_for,
            parsed.via,
            self.client.client_ip,
            self.client.proto,
            framing,
            None if parsed.has_host else snap.default_host,
            self.request_id,
        )

    def request_body(self, data: bytes) -> None:
        if self._req_mode == CHUNKED:
            self._send_body(b"%x\r\n" % len(data))
            self._send_body(data)
            self._send_body(b"\r\n")
        else:
            self._send_body(data)

    def request_end(self) -> None:
        if self._req_mode == CHUNKED:
            self._send_body(CHUNK_END)
        self._req_done = True

    def _send_body(self, data: bytes) -> None:
        replay = self._replay
        if replay is not None:
            self._replay_bytes += len(data)
            if self._replay_bytes > REPLAY_LIMIT:
                self._replay = None
            else:
                replay.append(data)
        upstream = self._upstream
        if upstream is not None:
            upstream.write(data)
            return
        if self.state in ENDED:
            return
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes > PENDING_LIMIT:
            self.client.pause(PAUSE_PENDING)

    # -- choosing a backend and connecting ----------------------------------------------------

    def begin(self) -> None:
        """Start forwarding (the client connection calls this once the head is complete)."""
        self.state = TRANSITIONS[self.state, BEGIN]
        self._deadline = self._started + self.snap.spec.total_timeout
        self._try_backend()

    def _try_backend(self) -> None:
        """Choose a backend (CHOOSING, or REPLAYING on a retry) and use it, or wait for it."""
        snap = self.snap
        group = self._group or snap.groups[0]
        backend = group.choose(self.client.client_ip, self._cookie, self._exclude)
        if backend is None:
            self._fail(502, "Bad Gateway", "no backend can take the request")
            return
        if backend.waiting:  # others wait first (a reload may have raised the cap since)
            wake(backend)
        if backend.full or backend.waiting:  # at its cap: wait for a slot
            self._queue_for(backend)
            return
        self._use(backend)

    def _queue_for(self, backend: BackendState) -> None:
        """Wait for a slot of `backend` (FIFO), up to queue_timeout; the queue holds at most
        as many requests as the proxy has client connections, so it is bounded."""
        self._last_name = backend.name
        spec = self.snap.spec
        if len(backend.waiting) >= spec.max_connections:
            self._queue_timed_out()
            return
        self.state = TRANSITIONS[self.state, QUEUE]
        backend.waiting.append(self)
        self._waiting_on = backend
        self._queued_until = self.shared.loop.time() + spec.queue_timeout

    def _unqueue(self) -> None:
        backend = self._waiting_on
        if backend is not None:
            self._waiting_on = None
            with contextlib.suppress(ValueError):
                backend.waiting.remove(self)

    def _queue_timed_out(self) -> None:
        self.shared.stats.queue_timeouts += 1
        self._fail(503, "Service Unavailable", "backend at its connection limit")

    def _use(self, backend: BackendState) -> None:
        snap = self.snap
        self._waiting_on = None
        self._backend = backend
        self._last_name = backend.name
        self._attempts += 1
        backend.in_flight += 1
        backend.requests += 1
        conn = self.shared.pool.take_idle(
            backend, None if self._idempotent else UNSAFE_REUSE_WITHIN
        )
        if conn is not None:
            self._attach(conn)
        else:
            self.state = TRANSITIONS[self.state, CONNECT]
            self._connecting = self.shared.pool.connect(
                backend, snap.spec.connect_timeout, self._connected
            )

    def _connected(self, conn: UpstreamConnection | None, error: str) -> None:
        self._connecting = None
        if self.state in ENDED:
            if conn is not None:
                self.shared.pool.release(conn)
            return
        if conn is None:  # refused or timed out: no request can cause that
            self._upstream_error(error, False, error == "timeout", request_independent=True)
            return
        self._attach(conn)

    def _attach(self, conn: UpstreamConnection) -> None:
        self.state = TRANSITIONS[self.state, SEND]
        self._upstream = conn
        conn.send(self, self._head, self._head_request, self._upgrade is not None)
        if self._pending:
            for piece in self._pending:
                conn.write(piece)
            self._pending = []
            if self._pending_bytes > PENDING_LIMIT:
                self.client.resume(PAUSE_PENDING)
            self._pending_bytes = 0

    # -- the response (ResponseSink) ----------------------------------------------------------

    def response_head(
        self,
        status: int,
        reason: bytes,
        pieces: list[bytes],
        connection: bytes | None,
        via: list[bytes],
        content_length: bytes | None,
        has_body: bool,
    ) -> None:
        self.state = TRANSITIONS[self.state, RESPONSE_HEAD]
        self._replay = None  # nothing of it is needed any more: no retry from here on
        self._status = status
        if content_length is not None and (has_body or self._head_request or status == 304):
            framing = b"Content-Length: " + content_length + b"\r\n"
            self._resp_mode = RAW if has_body else NO_BODY
        elif not has_body:
            framing = b""
            self._resp_mode = NO_BODY
        elif self.http11:
            framing = b"Transfer-Encoding: chunked\r\n"
            self._resp_mode = CHUNKED
        else:
            framing = b""
            self._resp_mode = RAW
            self.keep_alive = False  # an HTTP/1.0 client learns the end from the close
        extra = b"X-Request-Id: %s\r\n" % self.request_id
        snap = self.snap
        backend = self._backend
        if snap.sticky_cookie is not None and backend is not None and self._cookie != backend.name:
            extra += b"Set-Cookie: %s=%s; Path=/; HttpOnly\r\n" % (
                snap.sticky_cookie,
                backend.name.encode(),
            )
        keep = self.keep_alive and not self.shared.draining
        self.keep_alive = keep  # draining: this answer says Connection: close, then it closes
        self._out.append(
            hdr.response_head(status, reason, pieces, connection, via, framing, keep, extra)
        )

    def response_switched(self, pieces: list[bytes], via: list[bytes], protocol: bytes) -> None:
        """The backend switched protocols: relay its 101, then the connections are a tunnel
        (the backend stays counted in flight until the tunnel ends)."""
        self.state = TRANSITIONS[self.state, SWITCH]
        conn = self._upstream
        self._upstream = None
        self._replay = None
        self._status = 101
        extra = hdr.upgrade_head(protocol) + b"X-Request-Id: %s\r\n" % self.request_id
        transport = self.client.transport
        if transport is not None:
            transport.write(hdr.switching_head(pieces, via, extra))
        backend, self._backend = self._backend, None
        if backend is not None and backend.passive is not CLEAR:
            self.shared.report(self.snap, backend, True, None)
        duration = self.shared.loop.time() - self._started
        self.shared.stats.count_request(self._last_name, 101, duration)
        if self.shared.access_log is not None:
            self._log(101, duration)
        assert conn is not None
        self.client.start_tunnel(self, conn, backend)

    def response_body(self, data: bytes) -> None:
        self._bytes_out += len(data)
        if self._resp_mode == CHUNKED:
            self._out += (b"%x\r\n" % len(data), data, b"\r\n")
        else:
            self._out.append(data)

    def flush(self) -> None:
        out = self._out
        if out:
            self._out = []
            transport = self.client.transport
            if transport is not None:
                transport.write(out[0] if len(out) == 1 else b"".join(out))

    def response_end(self, reusable: bool) -> None:
        self.state = TRANSITIONS[self.state, RESPONSE_END]
        conn = self._upstream
        self._upstream = None
        if self._resp_mode == CHUNKED:
            self._out.append(CHUNK_END)
        self.flush()
        if conn is not None:
            if reusable and self._req_done:
                self.shared.pool.release(conn)
            else:
                conn.close()
        self._release_backend(ok=self._status < 500)
        self._finish(self.keep_alive and self._req_done)

    def upstream_failed(self, error: str, replied: bool) -> None:
        self._upstream = None
        self._upstream_error(error, replied, timed_out=False)

    def upstream_pause(self) -> None:
        self.client.pause(PAUSE_UPSTREAM)

    def upstream_resume(self) -> None:
        self.client.resume(PAUSE_UPSTREAM)

    # -- flow control from the client side -----------------------------------------------------

    def client_pause(self) -> None:
        """The client's write buffer is full: stop reading the backend."""
        if self._upstream is not None:
            self._upstream.pause_reading()

    def client_resume(self) -> None:
        conn = self._upstream
        if conn is not None:
            conn.last_io = self.shared.loop.time()
            conn.resume_reading()

    # -- failures, timeouts, the end ----------------------------------------------------------

    def _upstream_error(
        self, error: str, replied: bool, timed_out: bool, request_independent: bool = False
    ) -> None:
        failed = self._backend
        self._release_backend(ok=False, request_independent=request_independent)
        state = self.state
        if state in ENDED:
            return
        if state is RELAYING_RESPONSE:
            self._abort()
            return
        if (
            not replied
            and self._idempotent
            and self._replay is not None
            and self._attempts < 2
            and failed is not None
        ):
            self.state = TRANSITIONS[state, RETRY]
            self._exclude = (self._group or self.snap.groups[0]).local(failed)
            self.shared.stats.retries += 1
            self._pending = list(self._replay)
            self._pending_bytes = self._replay_bytes
            self._try_backend()
            return
        if timed_out:
            self._fail(504, "Gateway Timeout", f"backend timed out: {error}")
        else:
            self._fail(502, "Bad Gateway", f"backend failed: {error}")

    def check(self, now: float) -> None:
        """Called by the server's sweep: enforce the total and the read timeout."""
        state = self.state
        if state in ENDED or self._deadline == 0.0:
            return
        if state is QUEUED:
            if now >= self._queued_until or now >= self._deadline:
                self._unqueue()
                self._queue_timed_out()
            return
        conn = self._upstream
        if now < self._deadline:
            if conn is None or conn.reading_paused:
                return  # connecting (connect_timeout applies), or the client is slow to read
            if now < conn.last_io + self.snap.spec.read_timeout:
                return
        # A timeout: the backend is slow, or the whole request took too long.
        connecting = self._connecting is not None
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        if conn is not None:
            self._upstream = None
            conn.close()
        self._release_backend(ok=False, request_independent=connecting)
        if state is RELAYING_RESPONSE:
            self._abort()
        else:
            self._fail(504, "Gateway Timeout", "backend timed out")

    def request_failed(self, status: int, reason: str, message: str) -> None:
        """The client's body turned out malformed: drop the backend side and answer `status`
        unless the backend's answer already started (then the connection closes after it)."""
        self.keep_alive = False
        state = self.state
        if state in ENDED or state is RELAYING_RESPONSE:
            return
        self._drop_upstream()
        self._fail(status, reason, message)

    def _drop_upstream(self) -> None:
        """Stop connecting, close the backend connection (never pooled: it is mid-request)
        and release the backend without reporting it (it did nothing wrong)."""
        self._unqueue()
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        conn = self._upstream
        self._upstream = None
        if conn is not None:
            conn.close()
        self._release_backend(ok=True, report=False)

    def _release_backend(
        self, ok: bool, report: bool = True, request_independent: bool = False
    ) -> None:
        """Passive marks: a failure counts per client unless no request can have caused it
        (connect refused / timed out), so one client cannot take backends out (passive.py)."""
        backend = self._backend
        if backend is None:
            return
        self._backend = None
        backend.in_flight -= 1
        if backend.waiting:  # a slot freed: the oldest waiting request takes it
            wake(backend)
        if report and not (ok and backend.passive is CLEAR):  # the common case: nothing to do
            client = None if ok or request_independent else self.client.client_ip
            self.shared.report(self.snap, backend, ok, client)

    def _fail(self, status: int, reason: str, message: str) -> None:
        """Answer the client ourselves (nothing of the backend's answer was sent)."""
        self.state = TRANSITIONS[self.state, ANSWER]
        self._status = status
        self._replay = None
        self._pending = []
        transport = self.client.transport
        keep = self.keep_alive and self._req_done and not self.shared.draining
        self._bytes_out = len(message) + 1
        if transport is not None:
            extra = b"X-Request-Id: %s\r\n" % self.request_id
            transport.write(hdr.error_response(status, reason, message, keep, extra))
        self._finish(keep)

    def _abort(self) -> None:
        self.state = TRANSITIONS[self.state, CUT]
        self._finish(False)
        self.client.abort()

    def _finish(self, keep_alive: bool) -> None:
        """Count, log and hand the connection back (the state has just moved to its end)."""
        duration = self.shared.loop.time() - self._started
        self.shared.stats.count_request(self._last_name, self._status, duration)
        if self.shared.access_log is not None:
            self._log(self._status, duration)
        self.client.exchange_done(self, keep_alive)

    def abandon(self) -> None:
        """The client went away: stop, and do not keep the backend connection."""
        if self.state in ENDED:
            return
        self.state = TRANSITIONS[self.state, ABANDON]
        self._drop_upstream()
        duration = self.shared.loop.time() - self._started
        self.shared.stats.count_request(self._last_name, 499, duration)
        if self.shared.access_log is not None:
            self._log(499, duration)

    def _log(self, status: int, duration: float) -> None:
        access_log = self.shared.access_log
        assert access_log is not None
        access_log.log(
            (
                time.time(),
                self.client.client_ip,
                self._method,
                self._host,
                self._target,
                "HTTP/1.1" if self.http11 else "HTTP/1.0",
                status,
                self._bytes_out,
                duration,
                self._last_name,
                max(0, self._attempts - 1),
                self.request_id,
                self._referer,
                self._user_agent,
            )
        )
