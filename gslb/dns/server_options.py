"""The EDNS options whose answer is about this server and this client, not the zone:
COOKIE (RFC 7873) and NSID (RFC 5001).

Their reply options differ per client (a server cookie is bound to the client's address)
or per node (NSID), so no cached answer can hold them. `ServerOptions` wraps the
servers' handlers instead: it takes the options it answers out of the query, lets the
responder answer the rest (from the cache, most of the time: the query without its
cookie is the same for every client), and puts its options into the reply's OPT record.
The query's payload size is lowered by the room they need, so the answer the responder
makes still fits the client's limit with them added.

A client that sent a valid server cookie is not rate-limited: `limit` passes the reply
made for it as is.

Only queries with one OPT record that ends the packet (every resolver's form) are
handled; anything else, and any cookie of a malformed length, goes to the responder
unchanged, which answers FORMERR for the malformed cookies and ignores the rest.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from gslb.dns.cookies import COOKIE_CODE, ServerCookies, well_formed
from gslb.dns.layout import OptionError, layout, options
from gslb.dns.peers import peer_address

NSID_CODE = 3
MIN_UDP = 512
FLAG_TC = 0x02  # in the third byte of the header
# Bytes every COOKIE or NSID option starts with (code, then the high byte of a length
# below 256): a query without either is passed on after one or two `bytes.find`s.
_COOKIE_MARK = b"\x00\x0a\x00"
_NSID_MARK = b"\x00\x03\x00"
_COOKIE_ROOM = 4 + 8 + 16  # option header, client and server cookie

Handler = Callable[[bytes, str, bool], bytes | None]
Cached = Callable[[bytes], bytes | None]
Limit = Callable[[str, bytes], bytes | None]


class ServerOptions:
    """COOKIE and NSID around a responder's `handle` and `cached` (see the module doc)."""

    def __init__(
        self,
        handle: Handler,
        cached: Cached | None,
        *,
        udp_cap: int,
        cookies: ServerCookies | None = None,
        identity: bytes | None = None,
    ) -> None:
        self._handle = handle
        self._cached = cached or (lambda wire: None)
        self._udp_cap = udp_cap
        self._cookies = cookies
        self._nsid = identity
        self._trusted: bytes | None = None  # the last reply made for a valid cookie
        self._addresses: dict[str, bytes] = {}

    def _marked(self, wire: bytes) -> bool:
        """Whether the query may hold an option answered here (false positives are fine)."""
        return (self._cookies is not None and wire.find(_COOKIE_MARK, 12) >= 0) or (
            self._nsid is not None and wire.find(_NSID_MARK, 12) >= 0
        )

    def cached(self, wire: bytes) -> bytes | None:
        if self._marked(wire):
            return None  # answered by `handle`, which has the client's address
        return self._cached(wire)

    def handle(self, wire: bytes, peer: str, tcp: bool) -> bytes | None:
        if not self._marked(wire):
            return self._handle(wire, peer, tcp)
        shape = layout(wire)
        opt = shape.opt
        if (
            opt is None
            or not opt.at_root
            or shape.opt_count != 1
            or shape.question_end is None
            or opt.rdata_at + len(opt.rdata) != len(wire)
        ):
            return self._handle(wire, peer, tcp)
        try:
            found = options(opt.rdata)
        except OptionError:
            return self._handle(wire, peer, tcp)  # FORMERR from the responder
        kept: list[bytes] = []
        cookie: bytes | None = None
        nsid = False
        for code, data in found:
            if code == COOKIE_CODE and self._cookies is not None:
                if cookie is not None or not well_formed(data):
                    return self._handle(wire, peer, tcp)  # FORMERR from the responder
                cookie = data
            elif code == NSID_CODE and self._nsid is not None:
                nsid = True
            else:
                kept.append(struct.pack("!HH", code, len(data)) + data)
        if cookie is None and not nsid:
            return self._handle(wire, peer, tcp)  # a false positive of `_marked`
        added = b""
        trusted = False
        if cookie is not None:
            address = self._address(peer)
            if address is not None:
                data, trusted = self._cookies.answer(cookie, address)  # type: ignore[union-attr]
                added += struct.pack("!HH", COOKIE_CODE, len(data)) + data
        if nsid:
            assert self._nsid is not None
            added += struct.pack("!HH", NSID_CODE, len(self._nsid)) + self._nsid
        # The query as the responder sees it: without these options, and a payload size
        # that leaves room for them in the reply.
        limit = 65535 if tcp else max(MIN_UDP, min(opt.udp_size, self._udp_cap))
        rest = b"".join(kept)
        at = opt.at  # the OPT record: owner (root), TYPE, CLASS = payload size, TTL, RDLENGTH
        inner = (
            wire[: at + 3]
            + struct.pack("!H", max(0, limit - len(added)))
            + wire[at + 5 : at + 9]
            + struct.pack("!H", len(rest))
            + rest
        )
        reply = None if tcp else self._cached(inner)
        if reply is None:
            reply = self._handle(inner, peer, tcp)
        if reply is None:
            return None
        reply = _with_options(reply, added, limit)
        self._trusted = reply if trusted else None
        return reply

    def limit(self, inner: Limit) -> Limit:
        """`inner` (rate limiting), except for the reply to a client with a valid cookie."""

        def limit(peer: str, reply: bytes) -> bytes | None:
            if reply is self._trusted:
                self._trusted = None
                return reply
            return inner(peer, reply)

        return limit

    def _address(self, peer: str) -> bytes | None:
        address = self._addresses.get(peer)
        if address is None:
            parsed = peer_address(peer)
            if parsed is None:
                return None
            address = parsed.packed
            if len(self._addresses) >= 65_536:
                self._addresses.clear()
            self._addresses[peer] = address
        return address


def _with_options(reply: bytes, added: bytes, limit: int) -> bytes:
    """`reply` with `added` at the end of its OPT record; only the header, the question and
    the OPT record, with TC=1, when that would not fit in `limit`."""
    shape = layout(reply)
    opt = shape.opt
    if opt is None or opt.rdata_at + len(opt.rdata) != len(reply):
        return reply  # no OPT of ours to extend: the responder answered without one
    rdlength = len(opt.rdata) + len(added)
    if len(reply) + len(added) <= limit:
        return reply[: opt.rdata_at - 2] + struct.pack("!H", rdlength) + opt.rdata + added
    question = reply[12 : shape.question_end] if shape.question_end is not None else b""
    record = reply[opt.at : opt.rdata_at - 2] + struct.pack("!H", rdlength) + opt.rdata + added
    head = reply[:2] + bytes((reply[2] | FLAG_TC, reply[3]))
    counts = struct.pack("!HHHH", 1 if question else 0, 0, 0, 1)
    return head + counts + question + record


def dns_handlers(
    handle: Handler,
    cached: Cached | None,
    limit: Limit | None,
    *,
    udp_cap: int,
    cookie_secrets: tuple[bytes, ...] | None,
    identity: str | None,
) -> tuple[Handler, Cached | None, Limit | None]:
    """The (handle, cached, limit) a DNS server is given: the responder's own, wrapped in
    `ServerOptions` when cookies or an identity are configured."""
    if cookie_secrets is None and identity is None:
        return handle, cached, limit
    layer = ServerOptions(
        handle,
        cached,
        udp_cap=udp_cap,
        cookies=ServerCookies(cookie_secrets) if cookie_secrets is not None else None,
        identity=identity.encode("ascii") if identity is not None else None,
    )
    return layer.handle, layer.cached, layer.limit(limit) if limit is not None else None
