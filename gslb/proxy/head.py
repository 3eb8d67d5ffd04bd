"""One message head as httptools reports it, collected the same way for requests (the client
side, gslb.proxy.frontend) and responses (the backend side, gslb.proxy.upstream).

Each header is sorted as it arrives with one lookup in a role table (`REQUEST_ROLES` or
`RESPONSE_ROLES`, headers.py; `REQUEST` and `RESPONSE` here add the names in their usual
spelling, found without lowering them first): headers passed on go straight into
pre-formatted `pieces` (placeholder first) so the head sent on is one join; framing,
`Connection`, `Via` and the headers the proxy notes are kept apart. The parser calls
`on_header` (and `on_url`) of a `Head` directly: a connection hands its own parser these
bound methods, so a header costs one Python call, not two. A `Head` is reset for each
message and reused, never shared between connections.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gslb.proxy import headers as hdr
from gslb.proxy.headers import CRLF, KEEP, REQUEST_ROLES, RESPONSE_ROLES

# Header names as clients and servers nearly always spell them (with the role tables' own
# names in that spelling, added below). A name sent so costs one dict probe; any other
# spelling is lowered and looked up in the role table.
_USUAL_NAMES = (
    b"Accept",
    b"Accept-Encoding",
    b"Accept-Language",
    b"Accept-Ranges",
    b"Access-Control-Allow-Origin",
    b"Age",
    b"Authorization",
    b"Cache-Control",
    b"Content-Encoding",
    b"Content-Type",
    b"Date",
    b"ETag",
    b"Expires",
    b"If-Modified-Since",
    b"If-None-Match",
    b"Last-Modified",
    b"Location",
    b"Origin",
    b"Pragma",
    b"Server",
    b"Set-Cookie",
    b"Vary",
)


@dataclass(frozen=True, slots=True)
class Roles:
    """A role table by lower-case name, and the same roles of names in their usual spelling."""

    lower: Mapping[bytes, int]
    as_sent: Mapping[bytes, int]


def roles(table: Mapping[bytes, int]) -> Roles:
    usual = (*_USUAL_NAMES, *(name.title() for name in table))
    return Roles(table, {name: table.get(name.lower(), KEEP) for name in usual})


REQUEST = roles(REQUEST_ROLES)
RESPONSE = roles(RESPONSE_ROLES)


class Reject(Exception):
    """A request refused while parsing its head."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def _too_large(message: str) -> Reject:
    return Reject(431, "Request Header Fields Too Large", message)


class Head:
    __slots__ = (
        "_as_sent",
        "_count",
        "_limited",
        "_max_bytes",
        "_max_fields",
        "_roles",
        "_size",
        "chunked",
        "connection",
        "content_length",
        "cookies",
        "expect_continue",
        "forwarded_for",
        "has_host",
        "host",
        "pieces",
        "referer",
        "request_id",
        "upgrade",
        "url",
        "user_agent",
        "via",
    )

    def __init__(self, roles: Roles) -> None:
        self._roles = roles.lower
        self._as_sent = roles.as_sent
        self.via: list[bytes] = []
        self.forwarded_for: list[bytes] = []
        self.cookies: list[bytes] = []
        self.reset_request(0, 0)
        self._limited = False

    def reset(self) -> None:
        """Start a new message: the fields a response has (a response's head is not limited:
        the backend is trusted as far as that goes)."""
        self.pieces: list[bytes] = [b""]
        self.connection: bytes | None = None
        if self.via:  # replaced only when used: most messages have none
            self.via = []
        self.content_length: bytes | None = None
        self.chunked = False
        self.upgrade: bytes | None = None

    def reset_request(self, max_bytes: int, max_fields: int) -> None:
        """Start a new request: its head is held to `max_bytes` and `max_fields` (Reject 431
        beyond them), and the fields only requests have are cleared too."""
        self.reset()
        self._limited = True
        self._max_bytes = max_bytes
        self._max_fields = max_fields
        self._size = 0
        self._count = 0
        self.url = b""
        if self.forwarded_for:
            self.forwarded_for = []
        if self.cookies:
            self.cookies = []
        self.has_host = False
        self.host = b""
        self.referer = b""
        self.user_agent = b""
        self.request_id: bytes | None = None
        self.expect_continue = False

    # -- httptools callbacks --------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._size += len(url)
        if self._size > self._max_bytes:
            raise _too_large("request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._limited:  # a request's (one test here costs less than counting always)
            self._size += len(name) + len(value) + 4
            if self._size > self._max_bytes:
                raise _too_large("request head too large")
            self._count += 1
            if self._count > self._max_fields:
                raise _too_large("too many header fields")
        role = self._as_sent.get(name)
        if role is None:
            role = self._roles.get(name.lower(), KEEP)
        if role == KEEP:
            self.pieces += (name, b": ", value, CRLF)
        elif role == hdr.HOST:
            if self.has_host:  # RFC 9112 §3.2: more than one Host is a bad request
                raise Reject(400, "Bad Request", "more than one Host header")
            self.has_host = True
            self.host = value
            self.pieces += (name, b": ", value, CRLF)
        elif role == hdr.LENGTH:
            self.content_length = value.strip()
        elif role == hdr.TRANSFER_ENCODING:
            self.chunked = b"chunked" in value.lower()
        elif role == hdr.CONNECTION:
            self.connection = hdr.joined(self.connection, value)
        elif role == hdr.VIA:
            self.via.append(value)
        elif role == hdr.FORWARDED_FOR:
            self.forwarded_for.append(value)
        elif role == hdr.COOKIE:
            self.cookies.append(value)
            self.pieces += (name, b": ", value, CRLF)
        elif role == hdr.USER_AGENT:
            self.user_agent = value
            self.pieces += (name, b": ", value, CRLF)
        elif role == hdr.REFERER:
            self.referer = value
            self.pieces += (name, b": ", value, CRLF)
        elif role == hdr.REQUEST_ID:
            self.request_id = value.strip()
        elif role == hdr.EXPECT:
            self.expect_continue = value.strip().lower() == b"100-continue"
        elif role == hdr.UPGRADE:
            self.upgrade = value.strip()
