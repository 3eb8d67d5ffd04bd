"""Header rewriting for the proxy: which header is what, and how heads are put together.

Hop-by-hop headers (RFC 9110 section 7.6.1) describe one connection, not the message, so they
are removed in both directions, together with any header the `Connection` header names; the
proxy writes its own framing (`Content-Length` kept as is, or `Transfer-Encoding: chunked`)
and its own `Connection`. It adds `X-Forwarded-For` (appended), `X-Forwarded-Proto` and `Via`.

The parsers sort each header as it arrives with one lookup in `REQUEST_ROLES` or
`RESPONSE_ROLES` (by lower-case name): headers passed on unchanged go straight into a list of
pre-formatted pieces, so building the head afterwards is one join, with no second pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

# Roles of a header name. Names not in a table are passed on as they are (KEEP).
KEEP = 0
DROP = 1  # hop-by-hop, or replaced by the proxy
LENGTH = 2
TRANSFER_ENCODING = 3
CONNECTION = 4
VIA = 5
FORWARDED_FOR = 6
HOST = 7  # kept, and noted
COOKIE = 8  # kept, and noted (sticky)
EXPECT = 9  # answered by the proxy itself, not passed on
REQUEST_ID = 10  # replaced by the proxy's own (the client's kept when well-formed)
REFERER = 11  # kept, and noted (access log)
USER_AGENT = 12  # kept, and noted (access log)
UPGRADE = 13  # hop-by-hop, but passed on with `Connection: Upgrade` (tunnel.py)

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_COMMON = {name: DROP for name in HOP_BY_HOP} | {
    b"connection": CONNECTION,
    b"transfer-encoding": TRANSFER_ENCODING,
    b"content-length": LENGTH,
    b"via": VIA,
    b"upgrade": UPGRADE,
}
REQUEST_ROLES: dict[bytes, int] = _COMMON | {
    b"x-forwarded-for": FORWARDED_FOR,
    b"x-forwarded-proto": DROP,
    b"host": HOST,
    b"cookie": COOKIE,
    b"expect": EXPECT,
    b"x-request-id": REQUEST_ID,
    b"referer": REFERER,
    b"user-agent": USER_AGENT,
}
# The backend's X-Request-Id is replaced by the request's (the one the backend was sent).
RESPONSE_ROLES: dict[bytes, int] = _COMMON | {b"x-request-id": DROP}

VIA_VALUE = b"1.1 gslb"
CRLF = b"\r\n"
# Connection options that name no header: nothing more to remove for them.
_CONNECTION_OPTIONS = frozenset({b"", b"close", b"keep-alive"})
# Never removed because `Connection` names them: Host is end-to-end (RFC 9112 §3.2).
_NEVER_HOP_BY_HOP = _CONNECTION_OPTIONS | {b"host"}


# Reason phrases by status. The backend's own phrase is not passed on (RFC 9112 calls it
# informational only; HTTP/2 dropped it): not asking the parser for it saves a callback.
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


def reason(status: int) -> bytes:
    return _REASONS.get(status, b"Unknown")


def named_by_connection(value: bytes | None) -> frozenset[bytes]:
    """Lower-cased header names a `Connection` value lists (hop-by-hop too), Host never."""
    if value is None:
        return frozenset()
    lower = value.lower()
    if lower in _CONNECTION_OPTIONS:
        return frozenset()
    return frozenset(t.strip() for t in lower.split(b",")) - _NEVER_HOP_BY_HOP


def _without(pieces: list[bytes], names: frozenset[bytes]) -> list[bytes]:
    out = pieces[:1]
    for i in range(1, len(pieces), 4):
        if pieces[i].lower() not in names:
            out += pieces[i : i + 4]
    return out


def request_head(
    method: bytes,
    target: bytes,
    pieces: list[bytes],
    connection: bytes | None,
    forwarded_for: Sequence[bytes],
    via: Sequence[bytes],
    client_ip: str,
    proto: bytes,
    framing: bytes,
    host: bytes | None,
    request_id: bytes | None = None,
) -> bytes:
    """The request head sent to a backend.

    `pieces` are the kept headers (placeholder first; it is the caller's scratch list and is
    consumed); `connection` the client's Connection value; `forwarded_for` and `via` the
    client's values of those; `framing` the framing line(s) to add (`Content-Length: n\\r\\n`,
    `Transfer-Encoding: chunked\\r\\n` or empty); `host` a Host to add when the client sent none;
    `request_id` the X-Request-Id to send.
    """
    names = named_by_connection(connection)
    if names:
        pieces = _without(pieces, names)
    pieces[0] = b"%s %s HTTP/1.1\r\n" % (method, target)
    if host is not None:
        pieces += (b"Host: ", host, CRLF)
    if request_id is not None:
        pieces += (b"X-Request-Id: ", request_id, CRLF)
    ip = client_ip.encode()
    pieces += (
        b"X-Forwarded-For: ",
        b", ".join((*forwarded_for, ip)) if forwarded_for else ip,
        b"\r\nX-Forwarded-Proto: ",
        proto,
        b"\r\nVia: ",
        b", ".join((*via, VIA_VALUE)) if via else VIA_VALUE,
        CRLF,
        framing,
        CRLF,
    )
    return b"".join(pieces)


def response_head(
    status: int,
    reason: bytes,
    pieces: list[bytes],
    connection: bytes | None,
    via: Sequence[bytes],
    framing: bytes,
    keep_alive: bool,
    extra: bytes = b"",
) -> bytes:
    """The response head sent to the client: the kept headers (`pieces`, consumed as in
    `request_head`), `Via` appended, our framing and `Connection`, and `extra` (formatted
    header lines, e.g. Set-Cookie)."""
    names = named_by_connection(connection)
    if names:
        pieces = _without(pieces, names)
    pieces[0] = b"HTTP/1.1 %d %s\r\n" % (status, reason)
    pieces += (
        b"Via: ",
        b", ".join((*via, VIA_VALUE)) if via else VIA_VALUE,
        CRLF,
        framing,
        extra,
        b"Connection: keep-alive\r\n\r\n" if keep_alive else b"Connection: close\r\n\r\n",
    )
    return b"".join(pieces)


def upgrade_head(protocol: bytes) -> bytes:
    """The header lines that ask for (request) or agree to (101) a protocol switch."""
    return b"Connection: Upgrade\r\nUpgrade: " + protocol + CRLF


def wants_upgrade(connection: bytes | None) -> bool:
    """Whether a `Connection` value has the `upgrade` option."""
    if connection is None:
        return False
    return b"upgrade" in (t.strip() for t in connection.lower().split(b","))


def switching_head(pieces: list[bytes], via: Sequence[bytes], extra: bytes) -> bytes:
    """The 101 sent to the client: the backend's kept headers (`pieces`, consumed), `Via`,
    and `extra` (the Upgrade lines, X-Request-Id)."""
    pieces[0] = b"HTTP/1.1 101 Switching Protocols\r\n"
    pieces += (b"Via: ", b", ".join((*via, VIA_VALUE)) if via else VIA_VALUE, CRLF, extra, CRLF)
    return b"".join(pieces)


def error_response(
    status: int, reason: str, message: str, keep_alive: bool = False, extra: bytes = b""
) -> bytes:
    """A small complete plain-text response made by the proxy itself (400, 408, 502, ...);
    `extra` are formatted header lines (X-Request-Id)."""
    body = (message + "\n").encode()
    connection = b"keep-alive" if keep_alive else b"close"
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, reason.encode()),
            b"Content-Type: text/plain; charset=utf-8\r\n",
            b"Content-Length: %d\r\n" % len(body),
            b"Via: " + VIA_VALUE + CRLF,
            extra,
            b"Connection: " + connection + CRLF,
            CRLF,
            body,
        )
    )


def cookie_value(cookie_headers: Sequence[bytes], name: bytes) -> str | None:
    """The value of cookie `name` in the request's Cookie header values, if present."""
    prefix = name + b"="
    for value in cookie_headers:
        for part in value.split(b";"):
            part = part.strip()
            if part.startswith(prefix):
                return part[len(prefix) :].decode("latin-1")
    return None


def joined(previous: bytes | None, value: bytes) -> bytes:
    """A list-valued header seen again (RFC 9110 §5.3): the values so far, then this one."""
    return value if previous is None else previous + b", " + value
