"""Header rewriting for the proxy: pure functions over (name, value) byte pairs.

Hop-by-hop headers (RFC 9110 section 7.6.1) describe one connection, not the message, so they
are removed in both directions, together with any header the `Connection` header names; the
proxy writes its own framing (`Content-Length` kept as is, or `Transfer-Encoding: chunked`)
and its own `Connection`. It adds `X-Forwarded-For` (appended), `X-Forwarded-Proto` and `Via`.
"""

from __future__ import annotations

from collections.abc import Sequence

Header = tuple[bytes, bytes]

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
VIA = b"1.1 gslb"
# Connection options that name no header: nothing more to remove for them.
_CONNECTION_OPTIONS = frozenset({b"", b"close", b"keep-alive"})
CRLF = b"\r\n"


def connection_tokens(headers: Sequence[Header]) -> frozenset[bytes]:
    """Lower-cased header names listed in `Connection` (which are hop-by-hop too)."""
    names: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            names.update(t.strip().lower() for t in value.split(b","))
    names -= _CONNECTION_OPTIONS
    return frozenset(names)


def request_head(
    method: bytes,
    target: bytes,
    headers: Sequence[Header],
    client_ip: str,
    proto: bytes,
    framing: bytes,
    default_host: bytes,
) -> bytes:
    """The request head sent to a backend.

    `framing` is the framing header line(s) to add (`Content-Length: n\\r\\n`,
    `Transfer-Encoding: chunked\\r\\n` or empty); the client's own are dropped with the rest of
    the hop-by-hop headers. `Expect` is answered by the proxy itself, so it is dropped too.
    """
    drop = HOP_BY_HOP
    for name, value in headers:
        if len(name) == 10 and name.lower() == b"connection":
            if value.lower() not in _CONNECTION_OPTIONS:
                drop = HOP_BY_HOP | connection_tokens(headers)
            break
    out = [method, b" ", target, b" HTTP/1.1\r\n"]
    forwarded_for: list[bytes] = []
    via: list[bytes] = []
    has_host = False
    for name, value in headers:
        lower = name.lower()
        if lower in drop:
            continue
        if lower == b"x-forwarded-for":
            forwarded_for.append(value)
        elif lower == b"via":
            via.append(value)
        elif lower in (b"x-forwarded-proto", b"content-length", b"expect"):
            continue
        else:
            if lower == b"host":
                has_host = True
            out += (name, b": ", value, CRLF)
    if not has_host:
        out += (b"Host: ", default_host, CRLF)
    forwarded_for.append(client_ip.encode())
    via.append(VIA)
    out += (
        b"X-Forwarded-For: ",
        b", ".join(forwarded_for),
        b"\r\nX-Forwarded-Proto: ",
        proto,
        b"\r\nVia: ",
        b", ".join(via),
        CRLF,
        framing,
        CRLF,
    )
    return b"".join(out)


def response_head(
    status: int,
    reason: bytes,
    headers: Sequence[Header],
    framing: bytes,
    keep_alive: bool,
    extra: bytes = b"",
) -> bytes:
    """The response head sent to the client: hop-by-hop removed, `Via` appended, our framing
    and `Connection` added, and `extra` (already formatted header lines, e.g. Set-Cookie)."""
    drop = HOP_BY_HOP
    for name, value in headers:
        if len(name) == 10 and name.lower() == b"connection":
            if value.lower() not in _CONNECTION_OPTIONS:
                drop = HOP_BY_HOP | connection_tokens(headers)
            break
    out = [b"HTTP/1.1 ", str(status).encode(), b" ", reason, CRLF]
    via: list[bytes] = []
    for name, value in headers:
        lower = name.lower()
        if lower in drop or lower == b"content-length":
            continue
        if lower == b"via":
            via.append(value)
            continue
        out += (name, b": ", value, CRLF)
    via.append(VIA)
    out += (b"Via: ", b", ".join(via), CRLF, framing, extra)
    out.append(b"Connection: keep-alive\r\n\r\n" if keep_alive else b"Connection: close\r\n\r\n")
    return b"".join(out)


def error_response(status: int, reason: str, message: str, keep_alive: bool = False) -> bytes:
    """A small complete plain-text response made by the proxy itself (400, 408, 502, ...)."""
    body = (message + "\n").encode()
    connection = b"keep-alive" if keep_alive else b"close"
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, reason.encode()),
            b"Content-Type: text/plain; charset=utf-8\r\n",
            b"Content-Length: %d\r\n" % len(body),
            b"Via: " + VIA + CRLF,
            b"Connection: " + connection + CRLF,
            CRLF,
            body,
        )
    )


def cookie_value(headers: Sequence[Header], name: bytes) -> str | None:
    """The value of cookie `name` in the request's Cookie headers, if present."""
    prefix = name + b"="
    for hname, value in headers:
        if hname.lower() != b"cookie":
            continue
        for part in value.split(b";"):
            part = part.strip()
            if part.startswith(prefix):
                return part[len(prefix) :].decode("latin-1")
    return None
