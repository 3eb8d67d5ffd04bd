"""The head-collecting value both parsers share (gslb.proxy.head), fed by real httptools
parsers, without sockets."""

from __future__ import annotations

import pytest
from httptools import HttpParserCallbackError, HttpRequestParser, HttpResponseParser

from gslb.proxy.head import REQUEST, RESPONSE, Head, Reject, roles
from gslb.proxy.headers import KEEP, REQUEST_ROLES, RESPONSE_ROLES


class Feeder:
    """A parser's protocol object with the head's methods as its callbacks, as the proxy's
    connections do it."""

    def __init__(self, head: Head) -> None:
        self.on_url = head.on_url
        self.on_header = head.on_header
        self.complete = 0

    def on_headers_complete(self) -> None:
        self.complete += 1


A_REQUEST = (
    b"GET /a?b=1 HTTP/1.1\r\nHost: app.example.com\r\nUser-Agent: ua/1\r\n"
    b"Referer: http://ref.example/\r\nCookie: s=1\r\nX-Forwarded-For: 192.0.2.7\r\n"
    b"Via: 1.1 edge\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
    b"X-Request-Id: abc \r\nExpect: 100-continue\r\nContent-Length: 3\r\n"
    b"Upgrade: websocket\r\nAccept: */*\r\n\r\n"
)


def test_a_request_head_is_sorted_by_role() -> None:
    head = Head(REQUEST)
    head.reset_request(8192, 100)
    feeder = Feeder(head)
    HttpRequestParser(feeder).feed_data(A_REQUEST)
    assert feeder.complete == 1
    assert head.url == b"/a?b=1"
    assert head.has_host and head.host == b"app.example.com"
    assert (head.user_agent, head.referer) == (b"ua/1", b"http://ref.example/")
    assert head.cookies == [b"s=1"]
    assert head.forwarded_for == [b"192.0.2.7"]
    assert head.via == [b"1.1 edge"]
    assert head.connection == b"keep-alive, X-Secret"
    assert head.request_id == b"abc"
    assert head.expect_continue
    assert head.content_length == b"3"
    assert head.upgrade == b"websocket"
    assert not head.chunked
    kept = b"".join(head.pieces)
    assert kept == (
        b"Host: app.example.com\r\nUser-Agent: ua/1\r\nReferer: http://ref.example/\r\n"
        b"Cookie: s=1\r\nX-Secret: 1\r\nAccept: */*\r\n"
    )


def test_a_response_head_uses_the_response_roles_and_reset_clears_it() -> None:
    head = Head(RESPONSE)
    feeder = Feeder(head)
    parser = HttpResponseParser(feeder)
    parser.feed_data(
        b"HTTP/1.1 200 OK\r\nServer: s\r\nTransfer-Encoding: chunked\r\nVia: 1.0 b\r\n"
        b"X-Request-Id: backend\r\nConnection: close\r\nHost: kept-as-is\r\n\r\n"
    )
    assert head.chunked and head.content_length is None
    assert head.via == [b"1.0 b"] and head.connection == b"close"
    assert head.request_id is None  # the backend's is dropped (the request's is sent)
    assert not head.has_host  # Host means nothing in a response: kept as any other header
    assert b"".join(head.pieces) == b"Server: s\r\nHost: kept-as-is\r\n"
    head.reset()
    assert (head.pieces, head.via, head.connection, head.chunked) == ([b""], [], None, False)


@pytest.mark.parametrize(
    ("data", "max_bytes", "max_fields", "status", "message"),
    [
        (b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n", 100, 10, 431, "request target too long"),
        (
            b"GET / HTTP/1.1\r\nA: " + b"x" * 200 + b"\r\n\r\n",
            100,
            10,
            431,
            "request head too large",
        ),
        (b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 1000, 2, 431, "too many header fields"),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            1000,
            10,
            400,
            "more than one Host header",
        ),
    ],
)
def test_limits_reject(
    data: bytes, max_bytes: int, max_fields: int, status: int, message: str
) -> None:
    head = Head(REQUEST)
    head.reset_request(max_bytes, max_fields)
    with pytest.raises(HttpParserCallbackError) as caught:
        HttpRequestParser(Feeder(head)).feed_data(data)
    reject = caught.value.__context__
    assert isinstance(reject, Reject)
    assert (reject.status, reject.message) == (status, message)


@pytest.mark.parametrize("table", [REQUEST_ROLES, RESPONSE_ROLES])
def test_names_found_as_sent_have_their_lower_case_role(table: dict[bytes, int]) -> None:
    usual = roles(table).as_sent
    assert b"Content-Length" in usual and b"Server" in usual
    for name, role in usual.items():
        assert role == table.get(name.lower(), KEEP), name


def test_any_spelling_of_a_name_gets_its_role() -> None:
    head = Head(RESPONSE)
    parser = HttpResponseParser(Feeder(head))
    parser.feed_data(b"HTTP/1.1 200 OK\r\ncontent-LENGTH: 2\r\nVIA: 1.0 x\r\nServer: s\r\n\r\n")
    assert head.content_length == b"2"
    assert head.via == [b"1.0 x"]
    assert b"".join(head.pieces) == b"Server: s\r\n"
