"""The query log: one query in N, with its reply, as dnstap, never blocking the query path.

dnstap (dnstap.info) is what Knot, BIND, Unbound, PowerDNS and CoreDNS write: protobuf
messages in a Frame Streams file, read by `dnstap-read` (Debian's bind9-dnsutils) and
every dnstap tool. Each logged query is one `Dnstap` message of type AUTH_RESPONSE
carrying the query and the reply as sent, the client's address and both times.

The encoding is written out here: a Dnstap message is a dozen protobuf fields (varints,
fixed32 and bytes), and Frame Streams a length before each frame; the Python dnstap and
fstrm packages on PyPI are one person's small projects over a full protobuf runtime, more
to keep than these lines.

The query path only counts and, for the sampled query, appends a tuple to a bounded
deque (dropped and counted when full); a thread encodes and writes.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import struct
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

log = logging.getLogger(__name__)

Handler = Callable[[bytes, str, bool], bytes | None]
Cached = Callable[[bytes], bytes | None]

CONTENT_TYPE = b"protobuf:dnstap.Dnstap"
FSTRM_START, FSTRM_STOP, FSTRM_CONTENT_TYPE = 2, 3, 1
DNSTAP_MESSAGE = 1  # Dnstap.Type
AUTH_RESPONSE = 2  # Message.Type
FAMILY = {4: 1, 6: 2}  # SocketFamily INET, INET6
PROTOCOL_UDP, PROTOCOL_TCP = 1, 2
QUEUE_SIZE = 10_000  # records waiting for the writer; more are dropped (counted)


# --- protobuf, the few wire types a Dnstap message uses -------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_bytes(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _field_fixed32(number: int, value: int) -> bytes:
    return _varint(number << 3 | 5) + struct.pack("<I", value)


def dnstap_message(
    identity: bytes,
    version: bytes,
    peer: str,
    tcp: bool,
    query: bytes,
    reply: bytes,
    times: tuple[float, float],
) -> bytes:
    """One Dnstap protobuf message: an AUTH_RESPONSE with the query and its reply."""
    address = ipaddress.ip_address(peer)
    query_time, response_time = times
    message = b"".join(
        (
            _field_varint(1, AUTH_RESPONSE),
            _field_varint(2, FAMILY[address.version]),
            _field_varint(3, PROTOCOL_TCP if tcp else PROTOCOL_UDP),
            _field_bytes(4, address.packed),
            _field_varint(8, int(query_time)),
            _field_fixed32(9, int((query_time % 1) * 1e9)),
            _field_bytes(10, query),
            _field_varint(12, int(response_time)),
            _field_fixed32(13, int((response_time % 1) * 1e9)),
            _field_bytes(14, reply),
        )
    )
    return b"".join(
        (
            _field_bytes(1, identity),
            _field_bytes(2, version),
            _field_bytes(14, message),
            _field_varint(15, DNSTAP_MESSAGE),
        )
    )


# --- Frame Streams (unidirectional, as a file) ---------------------------------------


def _control(kind: int, fields: bytes = b"") -> bytes:
    frame = struct.pack("!I", kind) + fields
    return struct.pack("!II", 0, len(frame)) + frame  # 0: the escape before a control frame


def fstrm_start() -> bytes:
    field = struct.pack("!II", FSTRM_CONTENT_TYPE, len(CONTENT_TYPE)) + CONTENT_TYPE
    return _control(FSTRM_START, field)


def fstrm_stop() -> bytes:
    return _control(FSTRM_STOP)


def fstrm_data(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


# --- the log ---------------------------------------------------------------------------


class QueryLog:
    """Samples one query in `every`, and writes it to `path` from a thread of its own."""

    def __init__(
        self,
        path: str,
        every: int,
        identity: bytes,
        version: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.every = every
        self._identity = identity
        self._version = version
        self._clock = clock
        self._count = 0
        self._chosen = False  # `cached` left the sampled query to `handle`
        self._queue: collections.deque[tuple[str, bool, bytes, bytes, float, float]] = (
            collections.deque()
        )
        self.written = 0
        self.dropped = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115  (closed by close())
        self._file.write(fstrm_start())
        self._thread = threading.Thread(target=self._write, name="gslb-querylog", daemon=True)
        self._thread.start()

    def wrap(self, handle: Handler, cached: Cached | None) -> tuple[Handler, Cached]:
        """The servers' (handle, cached) with sampling: the sampled query is left by
        `cached` to `handle`, which has the client's address, and is logged there."""
        inner_cached = cached or (lambda wire: None)

        def sample_cached(wire: bytes) -> bytes | None:
            self._count += 1
            if self._count >= self.every:
                self._count = 0
                self._chosen = True
                return None
            return inner_cached(wire)

        def sample_handle(wire: bytes, peer: str, tcp: bool) -> bytes | None:
            if not self._chosen:
                return handle(wire, peer, tcp)
            self._chosen = False
            started = self._clock()
            reply = handle(wire, peer, tcp)
            if reply is not None:
                self.record(peer, tcp, wire, reply, started)
            return reply

        return sample_handle, sample_cached

    def record(self, peer: str, tcp: bool, query: bytes, reply: bytes, started: float) -> None:
        if len(self._queue) >= QUEUE_SIZE:
            self.dropped += 1  # the writer is behind: lose log lines, never time
            return
        self._queue.append((peer, tcp, query, reply, started, self._clock()))
        self._wake.set()

    def _write(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            self._drain()
        self._drain()

    def _drain(self) -> None:
        frames = []
        queue = self._queue
        while queue:
            peer, tcp, query, reply, started, done = queue.popleft()
            try:
                message = dnstap_message(
                    self._identity, self._version, peer, tcp, query, reply, (started, done)
                )
            except ValueError:
                continue  # not an IP address: nothing to log it under
            frames.append(fstrm_data(message))
        if frames:
            try:
                self._file.write(b"".join(frames))
                self._file.flush()
                self.written += len(frames)
            except OSError as exc:
                self.dropped += len(frames)
                log.warning("query log %s: %s", self.path, exc)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5)
        try:
            self._file.write(fstrm_stop())
            self._file.close()
        except OSError as exc:
            log.warning("query log %s: %s", self.path, exc)


def open_query_log(
    path: str, sample: int, identity: str | None, suffix: str = ""
) -> QueryLog | None:
    """The query log for `query_log:` (None when it cannot be opened: logged, not fatal)."""
    import socket
    from importlib import metadata

    try:
        version = metadata.version("gslb")
    except metadata.PackageNotFoundError:
        version = "unknown"
    name = identity or socket.gethostname()
    try:
        return QueryLog(path + suffix, sample, name.encode(), f"gslb {version}".encode())
    except OSError as exc:
        log.error("query log %s: %s: queries are not logged", path + suffix, exc)
        return None
