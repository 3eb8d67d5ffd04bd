"""A batch of UDP datagrams per system call: recvmmsg(2) and sendmmsg(2).

At 100k queries/s most of a core goes to the kernel's UDP work, and a `recvfrom` plus a
`sendto` per query add two system calls and a Python address tuple each way. Reading up to
`BATCH` datagrams with one `recvmmsg` and sending their replies with one `sendmmsg` saves
both: the kernel fills preallocated buffers, and the peer's address goes back out as the
raw sockaddr it came in, never becoming a Python tuple (the handler gets the address as a
string, from a small cache keyed by the raw bytes).

The buffers and the loop over a batch's cached answers are a small C module
(gslb/dns/_mmsg.c, built by `pip install`): on a cached answer the Python around each
datagram (ctypes, slicing, index arithmetic) cost as much as the answer. `_CtypesBatch`
below is its pure-Python twin, the same methods over ctypes, used where the module is not
built and held byte for byte equal to it by the tests. GSLB_UDP_BATCH chooses:
unset (or `c`) the C module when it imports, else the twin; `py` the twin; `0` neither
(the server then uses plain `recvfrom`/`sendto`).

Linux only (glibc and musl both export the calls); `available()` says whether batches can
be used. Errors behave as with the plain calls: a datagram longer than `max_query` is cut
(and gets FORMERR), an ICMP error reported for an earlier reply is skipped, and a reply
that does not fit the socket's send buffer is dropped (the client asks again).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterable
from typing import Protocol

from gslb.evicting import ClockCache
from gslb.ratelog import RateLog

log = logging.getLogger(__name__)

Handler = Callable[[bytes, str, bool], bytes | None]
Cached = Callable[[bytes], bytes | None]
Limit = Callable[[str, bytes], bytes | None]  # (peer, reply) -> what to send, if anything

BATCH = 64  # datagrams per system call
MAX_REPLY = 4096  # dns.max_udp_size is at most 4096, so every UDP reply fits a slot
NAME_SIZE = 28  # sizeof(struct sockaddr_in6), the larger of the two address kinds
MSG_DONTWAIT = 0x40
PEERS_KEPT = 65_536  # addresses remembered as strings
_DRAINED = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR})


class Batch(Protocol):
    """The buffers of one socket (gslb/dns/_mmsg.pyi documents each method)."""

    def receive(self) -> int: ...
    def wire(self, i: int, /) -> bytes: ...
    def name(self, i: int, /) -> bytes: ...
    def queue(self, i: int, reply: bytes, /) -> bool: ...
    def answer_cached(self, cached: Cached, /) -> list[int]: ...
    def send(self) -> tuple[int, int]: ...


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("len", ctypes.c_uint)]


_STRIDE = ctypes.sizeof(_MMsgHdr)
# Where a message's fields sit, counted in 8-byte words (pointers) and 4-byte words
# (lengths) of the message arrays, so the loop reads and writes them through flat views.
_NAME_Q = _MsgHdr.name.offset // 8
_IOV_Q = _MsgHdr.iov.offset // 8
_NAMELEN_I = _MsgHdr.namelen.offset // 4
_LEN_I = _MMsgHdr.len.offset // 4
_IOV_LEN_Q = _IoVec.len.offset // 8

_Call = Callable[..., int]


def _libc_calls() -> tuple[_Call, _Call] | None:
    if not sys.platform.startswith("linux"):
        return None
    if _STRIDE % 8 or _MsgHdr.name.offset % 8 or _MsgHdr.namelen.offset % 4:
        return None  # a layout the flat views below cannot address
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        recvmmsg, sendmmsg = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    recvmmsg.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_void_p,
    ]
    recvmmsg.restype = ctypes.c_int
    sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    sendmmsg.restype = ctypes.c_int
    return recvmmsg, sendmmsg


class _CtypesBatch:
    """The twin of _mmsg.Batch: the same buffers and methods, over ctypes."""

    def __init__(self, fd: int, size: int, max_query: int, max_reply: int) -> None:
        assert _CALLS is not None, "check available() first"
        self._recvmmsg, self._sendmmsg = _CALLS
        self._fd = fd
        self._size = size
        self._max_query = max_query
        self._max_reply = max_reply
        self._received = 0
        self._ready = bytearray(size)  # per datagram: its reply is queued in its slot
        # One contiguous buffer each for datagrams in, replies out and peer addresses;
        # message i of the arrays points at slot i.
        self._inbox = bytearray(size * max_query)
        self._outbox = bytearray(size * max_reply)
        self._names = bytearray(size * NAME_SIZE)
        in_iov, self._out_iov = (_IoVec * size)(), (_IoVec * size)()
        self._in_msgs, self._out_msgs = (_MMsgHdr * size)(), (_MMsgHdr * size)()
        inbox = ctypes.addressof(ctypes.c_char.from_buffer(self._inbox))
        outbox = ctypes.addressof(ctypes.c_char.from_buffer(self._outbox))
        names = ctypes.addressof(ctypes.c_char.from_buffer(self._names))
        self._name_at = [names + i * NAME_SIZE for i in range(size)]
        self._out_iov_at = [ctypes.addressof(self._out_iov[i]) for i in range(size)]
        for i in range(size):
            in_iov[i].base = inbox + i * max_query
            in_iov[i].len = max_query
            self._out_iov[i].base = outbox + i * max_reply
            self._in_msgs[i].hdr.name = self._name_at[i]
            self._in_msgs[i].hdr.iov = ctypes.addressof(in_iov[i])
            self._in_msgs[i].hdr.iovlen = 1
            self._out_msgs[i].hdr.iovlen = 1
        self._in_iov = in_iov  # kept alive: the messages point into it
        self._in_at = ctypes.addressof(self._in_msgs)
        self._out_at = ctypes.addressof(self._out_msgs)
        # Flat views of the arrays, for the fields that change per datagram.
        self._in_words = memoryview(self._in_msgs).cast("B").cast("I")
        self._out_words = memoryview(self._out_msgs).cast("B").cast("I")
        self._out_quads = memoryview(self._out_msgs).cast("B").cast("Q")
        self._out_iov_quads = memoryview(self._out_iov).cast("B").cast("Q")

    def receive(self) -> int:
        words, stride = self._in_words, _STRIDE // 4
        for i in range(self._size):
            words[i * stride + _NAMELEN_I] = NAME_SIZE
        self._ready[: self._received] = bytes(self._received)
        self._received = 0
        count = self._recvmmsg(self._fd, self._in_at, self._size, MSG_DONTWAIT, None)
        if count < 0:
            return -ctypes.get_errno()
        self._received = count
        return count

    def _check(self, i: int) -> None:
        if not 0 <= i < self._received:
            raise IndexError("no such datagram in this batch")

    def wire(self, i: int, /) -> bytes:
        self._check(i)
        start = i * self._max_query
        return bytes(self._inbox[start : start + self._in_words[i * (_STRIDE // 4) + _LEN_I]])

    def name(self, i: int, /) -> bytes:
        self._check(i)
        length = min(self._in_words[i * (_STRIDE // 4) + _NAMELEN_I], NAME_SIZE)
        return bytes(self._names[i * NAME_SIZE : i * NAME_SIZE + length])

    def queue(self, i: int, reply: bytes, /) -> bool:
        self._check(i)
        return self._put(i, reply)

    def _put(self, i: int, reply: bytes) -> bool:
        size = len(reply)
        if size > self._max_reply:
            return False
        at = i * self._max_reply
        self._outbox[at : at + size] = reply
        self._out_iov_quads[i * 2 + _IOV_LEN_Q] = size
        self._ready[i] = 1
        return True

    def answer_cached(self, cached: Cached, /) -> list[int]:
        rest = []
        for i in range(self._received):
            try:
                reply = cached(self.wire(i))
            except Exception:
                rest.append(-1 - i)
                continue
            if reply is None:
                rest.append(i)
            elif type(reply) is not bytes or not self._put(i, reply):
                rest.append(-1 - i)
        return rest

    def send(self) -> tuple[int, int]:
        quads, words = self._out_quads, self._out_words
        stride_q, stride_i = _STRIDE // 8, _STRIDE // 4
        in_words, ready = self._in_words, self._ready
        queued = 0
        # In the order of the datagrams, each reply to the address its query came from.
        for i in range(self._received):
            if ready[i]:
                quads[queued * stride_q + _IOV_Q] = self._out_iov_at[i]
                quads[queued * stride_q + _NAME_Q] = self._name_at[i]
                words[queued * stride_i + _NAMELEN_I] = in_words[i * stride_i + _NAMELEN_I]
                queued += 1
        ready[: self._received] = bytes(self._received)
        sent = skipped = 0
        while sent < queued:
            done = self._sendmmsg(
                self._fd, self._out_at + sent * _STRIDE, queued - sent, MSG_DONTWAIT
            )
            if done > 0:
                sent += done
                continue
            code = ctypes.get_errno()
            if code in (errno.EAGAIN, errno.EWOULDBLOCK):
                return skipped, queued - sent  # the send buffer is full: the clients retry
            if code != errno.EINTR:
                sent += 1  # this one failed (e.g. an ICMP error for its peer): skip it
                skipped += 1
        return skipped, 0


_CALLS = _libc_calls()
BatchType = Callable[[int, int, int, int], Batch]


def _engines() -> dict[str, BatchType]:
    """The batch implementations usable here, by GSLB_UDP_BATCH's name for them."""
    if _CALLS is None:
        return {}
    engines: dict[str, BatchType] = {"py": _CtypesBatch}
    try:
        from gslb.dns import _mmsg
    except ImportError:
        return engines
    engines["c"] = _mmsg.Batch
    return engines


ENGINES = _engines()


def engine() -> str | None:
    """The implementation GSLB_UDP_BATCH asks for and this machine has ("c" or "py"), or
    None: no batches (not Linux, or GSLB_UDP_BATCH=0)."""
    wanted = os.environ.get("GSLB_UDP_BATCH", "")
    if wanted == "0":
        return None
    if wanted == "py":
        return "py" if "py" in ENGINES else None
    return "c" if "c" in ENGINES else "py" if "py" in ENGINES else None


def available() -> bool:
    """Whether `BatchedUdp` can run here (Linux, and not turned off by GSLB_UDP_BATCH=0)."""
    return engine() is not None


def _address(name: bytes) -> str:
    """A sockaddr_in or sockaddr_in6's address as text, as recvfrom reports it."""
    if int.from_bytes(name[:2], sys.byteorder) == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, name[8:24])
    return socket.inet_ntop(socket.AF_INET, name[4:8])


class BatchedUdp:
    """The batch buffers of one socket: `drain` answers what is waiting, in batches."""

    def __init__(
        self,
        sock: socket.socket,
        handle: Handler,
        cached: Cached | None,
        max_query: int,
        limit: Limit | None = None,
        *,
        use: str | None = None,
    ) -> None:
        """`handle(wire, peer, tcp)` answers any query; `cached(wire)`, when given, answers
        the common ones without the peer's address, or returns None to leave it to
        `handle`; `limit(peer, reply)`, when given (response rate limiting), says what of
        each reply goes out. `use`: "c" or "py" (default: as `engine()` says)."""
        name = use or engine()
        assert name is not None and name in ENGINES, "check available() first"
        self.engine = name
        self._batch = ENGINES[name](sock.fileno(), BATCH, max_query, MAX_REPLY)
        self._handle = handle
        self._cached = cached
        self._limit = limit
        self._log = RateLog(log)
        self._peers: ClockCache[bytes, str] = ClockCache(max_entries=PEERS_KEPT)

    def drain(self, batches: int) -> None:
        """Answer up to `batches` batches of waiting datagrams (the loop's reader callback)."""
        batch, cached = self._batch, self._cached
        for _ in range(batches):
            count = batch.receive()
            if count < 0:
                if -count in _DRAINED:
                    return
                # An ICMP error reported for an earlier reply: skip it, read on.
                log.debug("UDP receive error: %s", os.strerror(-count))
                continue
            # Without rate limiting a cached answer needs no peer: the batch runs them all
            # (in C, with the module), and only the rest come back here.
            rest: Iterable[int] = range(count)
            if cached is not None and self._limit is None:
                rest = batch.answer_cached(cached)
            for i in rest:
                self._answer(i)
            skipped, dropped = batch.send()
            if skipped or dropped:
                log.debug("UDP replies not sent: %d failed, %d for a full buffer", skipped, dropped)
            if count < BATCH:
                return  # drained: the loop calls again when more arrives

    def _answer(self, i: int) -> None:
        """Answer datagram `i` in full: i < 0 (-1 - i) when the cached answer failed, i
        when it gave None (or ask it now, when the batch did not)."""
        batch, cached, limit = self._batch, self._cached, self._limit
        asked = i >= 0 and cached is not None and limit is None
        i = i if i >= 0 else -1 - i
        wire = batch.wire(i)
        reply = None
        if cached is not None and not asked:
            try:
                reply = cached(wire)
            except Exception:  # a bug must cost one answer, not the batch: log, go on
                self._log.exception("cached", "cached answer failed; answering by the full path")
        peer = None
        if reply is None:
            peer = self._peer(i)
            if peer is None:
                return  # not an IP address: nothing to answer to
            try:
                reply = self._handle(wire, peer, False)
            except Exception:  # one query must cost only its own answer, never the batch
                self._log.exception("handle", "query from %s not answered", peer)
                return
            if reply is None:
                return
        if limit is not None:
            if peer is None:
                peer = self._peer(i)
                if peer is None:
                    return
            reply = limit(peer, reply)
            if reply is None:
                return
        if not batch.queue(i, reply):  # cannot happen: UDP replies are capped at 4096
            self._log.log(logging.ERROR, "size", "UDP reply of %d bytes dropped", len(reply))

    def _peer(self, i: int) -> str | None:
        """The sender of datagram `i` of the batch as text (None: not an IP address)."""
        name = self._batch.name(i)
        peer = self._peers.get(name)
        if peer is None:
            try:
                peer = _address(name)
            except (OSError, ValueError):
                return None
            self._peers.put(name, peer)
        return peer
