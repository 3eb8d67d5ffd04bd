"""Host handling (RFC 9112 §3.2), raw bytes to a real proxy: one Host, required on HTTP/1.1,
never removed as hop-by-hop."""

from __future__ import annotations

import json

from proxyhelpers import Env, make_spec, raw_request


async def test_two_host_headers_are_refused(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    reply = await raw_request(
        proxy.port, b"GET /echo HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n"
    )
    assert reply.status == 400
    assert reply.header("Connection") == "close"
    assert b.hits == 0  # nothing went to the backend


async def test_http11_without_host_is_refused(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    reply = await raw_request(proxy.port, b"GET /echo HTTP/1.1\r\nX-A: 1\r\n\r\n")
    assert reply.status == 400
    assert b.hits == 0


async def test_http10_without_host_is_forwarded(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    reply = await raw_request(proxy.port, b"GET /echo HTTP/1.0\r\n\r\n")
    assert reply.status == 200
    headers = [(k.lower(), v) for k, v in json.loads(reply.body)["headers"]]
    assert [v for k, v in headers if k == "host"] == ["localhost"]


async def test_connection_naming_host_keeps_host(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    reply = await raw_request(
        proxy.port,
        b"GET /echo HTTP/1.1\r\nHost: kept.test\r\nConnection: Host, X-Gone\r\nX-Gone: 1\r\n\r\n",
    )
    assert reply.status == 200
    headers = [(k.lower(), v) for k, v in json.loads(reply.body)["headers"]]
    assert [v for k, v in headers if k == "host"] == ["kept.test"]
    assert "x-gone" not in dict(headers)
