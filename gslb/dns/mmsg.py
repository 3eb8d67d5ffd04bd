"""A batch of UDP datagrams per system call: recvmmsg(2) and sendmmsg(2) through ctypes.

At 100k queries/s most of a core goes to the kernel's UDP work, and a `recvfrom` plus a
`sendto` per query add two system calls and a Python address tuple each way. Reading up to
`BATCH` datagrams with one `recvmmsg` and sending their replies with one `sendmmsg` saves
both: the kernel fills preallocated buffers, and the peer's address goes back out as the
raw sockaddr it came in, never becoming a Python tuple (the handler gets the address as a
string, from a small cache keyed by the raw bytes).

Linux only (glibc and musl both export the calls); `available()` says whether it can be
used, and the server falls back to `recvfrom`/`sendto` where it cannot or when
GSLB_UDP_BATCH=0 is set. Errors behave as with the plain calls: a datagram longer than
`max_query` is cut (and gets FORMERR), an ICMP error reported for an earlier reply is
skipped, and a reply that does not fit the socket's send buffer is dropped (the client
asks again).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import socket
import sys
from collections.abc import Callable

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
# Where a message's fields sit, counted in 8-byte words (name) and 4-byte words (lengths) of
# the message array, so the hot loop reads and writes them through flat memoryviews.
_NAME_Q = _MsgHdr.name.offset // 8
_NAMELEN_I = _MsgHdr.namelen.offset // 4
_LEN_I = _MMsgHdr.len.offset // 4
_IOV_LEN_Q = _IoVec.len.offset // 8

_Call = Callable[..., int]


def _libc_calls() -> tuple[_Call, _Call] | None:
    if not sys.platform.startswith("linux") or os.environ.get("GSLB_UDP_BATCH") == "0":
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


_CALLS = _libc_calls()


def available() -> bool:
    """Whether `BatchedUdp` can run here (Linux, and not turned off by GSLB_UDP_BATCH=0)."""
    return _CALLS is not None


def _address(name: bytes) -> str:
    """A sockaddr_in or sockaddr_in6's address as text, as recvfrom reports it."""
    if int.from_bytes(name[:2], sys.byteorder) == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, name[8:24])
    return socket.inet_ntop(socket.AF_INET, name[4:8])


class BatchedUdp:
    """Preallocated buffers for one socket: `drain` answers what is waiting, in batches."""

    def __init__(
        self,
        sock: socket.socket,
        handle: Handler,
        cached: Cached | None,
        max_query: int,
        limit: Limit | None = None,
    ) -> None:
        """`handle(wire, peer, tcp)` answers any query; `cached(wire)`, when given, answers
        the common ones without the peer's address, or returns None to leave it to
        `handle`; `limit(peer, reply)`, when given (response rate limiting), says what of
        each reply goes out."""
        assert _CALLS is not None, "check available() first"
        self._recvmmsg, self._sendmmsg = _CALLS
        self._fd = sock.fileno()
        self._handle = handle
        self._cached = cached or (lambda wire: None)
        self._max_query = max_query
        self._limit = limit
        self._log = RateLog(log)
        self._peers: dict[bytes, str] = {}
        # One contiguous buffer each for datagrams in, replies out and peer addresses;
        # message i of either array points at slot i.
        self._inbox = bytearray(BATCH * max_query)
        self._outbox = bytearray(BATCH * MAX_REPLY)
        self._names = bytearray(BATCH * NAME_SIZE)
        self._in_iov = (_IoVec * BATCH)()
        self._out_iov = (_IoVec * BATCH)()
        self._in_msgs = (_MMsgHdr * BATCH)()
        self._out_msgs = (_MMsgHdr * BATCH)()
        inbox = ctypes.addressof(ctypes.c_char.from_buffer(self._inbox))
        outbox = ctypes.addressof(ctypes.c_char.from_buffer(self._outbox))
        self._names_at = ctypes.addressof(ctypes.c_char.from_buffer(self._names))
        for i in range(BATCH):
            self._in_iov[i].base = inbox + i * max_query
            self._in_iov[i].len = max_query
            self._out_iov[i].base = outbox + i * MAX_REPLY
            for msgs, iov in ((self._in_msgs, self._in_iov), (self._out_msgs, self._out_iov)):
                msgs[i].hdr.name = self._names_at + i * NAME_SIZE
                msgs[i].hdr.namelen = NAME_SIZE
                msgs[i].hdr.iov = ctypes.addressof(iov[i])
                msgs[i].hdr.iovlen = 1
        self._name_addresses = [self._names_at + i * NAME_SIZE for i in range(BATCH)]
        self._in_at = ctypes.addressof(self._in_msgs)
        self._out_at = ctypes.addressof(self._out_msgs)
        # Flat views of the message arrays, for the fields that change per datagram.
        self._in_words = memoryview(self._in_msgs).cast("B").cast("I")
        self._out_quads = memoryview(self._out_msgs).cast("B").cast("Q")
        self._out_iov_quads = memoryview(self._out_iov).cast("B").cast("Q")

    def drain(self, batches: int) -> None:
        """Answer up to `batches` batches of waiting datagrams (the loop's reader callback)."""
        for _ in range(batches):
            count = self._recvmmsg(self._fd, self._in_at, BATCH, MSG_DONTWAIT, None)
            if count < 0:
                code = ctypes.get_errno()
                if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    return
                # An ICMP error reported for an earlier reply: skip it, read on.
                log.debug("UDP receive error: %s", os.strerror(code))
                continue
            self._answer(count)
            if count < BATCH:
                return  # drained: the loop calls again when more arrives

    def _answer(self, count: int) -> None:
        handle, cached, limit = self._handle, self._cached, self._limit
        inbox = self._inbox
        in_words = self._in_words
        out_quads = self._out_quads
        out_lengths = self._out_iov_quads
        name_addresses = self._name_addresses
        outbox = self._outbox
        max_query = self._max_query
        stride_q, stride_i = _STRIDE // 8, _STRIDE // 4
        replies = 0
        for i in range(count):
            start = i * max_query
            wire = bytes(inbox[start : start + in_words[i * stride_i + _LEN_I]])
            try:
                reply = cached(wire)
            except Exception:  # a bug must cost one answer, not the batch: log, go on
                self._log.exception("cached", "cached answer failed; answering by the full path")
                reply = None
            peer = None
            if reply is None:
                peer = self._peer(i)
                if peer is None:
                    continue  # not an IP address: nothing to answer to
                try:
                    reply = handle(wire, peer, False)
                except Exception:  # one query must cost only its own answer, never the batch
                    self._log.exception("handle", "query from %s not answered", peer)
                    continue
                if reply is None:
                    continue
            if limit is not None:
                if peer is None:
                    peer = self._peer(i)
                    if peer is None:
                        continue
                reply = limit(peer, reply)
                if reply is None:
                    continue
            size = len(reply)
            if size > MAX_REPLY:  # cannot happen: UDP replies are capped at max_udp_size
                self._log.log(logging.ERROR, "size", "UDP reply of %d bytes dropped", size)
                continue
            at = replies * MAX_REPLY
            outbox[at : at + size] = reply
            out_lengths[replies * 2 + _IOV_LEN_Q] = size
            # The reply goes to the address the query came from: point at its sockaddr
            # (the outgoing length stays NAME_SIZE, enough for either family).
            out_quads[replies * stride_q + _NAME_Q] = name_addresses[i]
            replies += 1
        self._send(replies)

    def _peer(self, i: int) -> str | None:
        """The sender of datagram `i` of the batch as text (None: not an IP address)."""
        # The kernel wrote the sender's address and its length (which stays the same for a
        # socket of one family, so it needs no reset).
        stride_i = _STRIDE // 4
        name_length = self._in_words[i * stride_i + _NAMELEN_I]
        name = bytes(self._names[i * NAME_SIZE : i * NAME_SIZE + name_length])
        peers = self._peers
        peer = peers.get(name)
        if peer is None:
            if len(peers) >= PEERS_KEPT:
                peers.clear()
            try:
                peer = peers[name] = _address(name)
            except (OSError, ValueError):
                return None
        return peer

    def _send(self, replies: int) -> None:
        sent = 0
        while sent < replies:
            done = self._sendmmsg(
                self._fd, self._out_at + sent * _STRIDE, replies - sent, MSG_DONTWAIT
            )
            if done > 0:
                sent += done
                continue
            code = ctypes.get_errno()
            if code in (errno.EAGAIN, errno.EWOULDBLOCK):
                return  # the send buffer is full: drop the rest, the clients retry
            if code != errno.EINTR:
                log.debug("UDP send error: %s", os.strerror(code))
                sent += 1  # this one failed (e.g. an ICMP error for its peer): skip it
