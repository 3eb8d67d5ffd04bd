"""Forwarding over real sockets: headers, keep-alive pools, streaming, chunked, odd requests."""

from __future__ import annotations

import asyncio
import hashlib
import json

import aiohttp
from proxyhelpers import Env, get, make_spec, pattern, raw_request, read_reply


async def test_get_adds_forwarding_headers_and_strips_hop_by_hop(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    request = (
        b"GET /echo?q=1 HTTP/1.1\r\nHost: example.test\r\n"
        b"X-Forwarded-For: 203.0.113.9\r\nVia: 1.0 edge\r\nX-Forwarded-Proto: https\r\n"
        b"Connection: keep-alive, X-Secret\r\nX-Secret: hop\r\nKeep-Alive: timeout=5\r\n"
        b"TE: trailers\r\nUpgrade: websocket\r\nProxy-Authorization: Basic eA==\r\n"
        b"X-Kept: yes\r\n\r\n"
    )
    reply = await raw_request(proxy.port, request)
    assert reply.status == 200
    seen = json.loads(reply.body)
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert seen["path"] == "/echo?q=1"
    assert headers["host"] == "example.test"
    assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["via"] == "1.0 edge, 1.1 gslb"
    assert headers["x-kept"] == "yes"
    for gone in ("x-secret", "keep-alive", "te", "upgrade", "proxy-authorization"):
        assert gone not in headers, gone
    assert reply.header("Via") == "1.1 gslb"
    assert reply.header("X-Backend") == "solo"


async def test_keep_alive_both_sides_reuses_backend_connections(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    for _ in range(20):
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        reply = await read_reply(reader)
        assert reply.status == 200 and reply.body == b"solo"
        assert reply.header("Connection") == "keep-alive"
    writer.close()
    assert b.hits == 20
    assert len(b.peers) == 1  # one pooled upstream connection carried all twenty


async def test_pipelined_requests_are_answered_in_order(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        b"GET /slow?s=0.05 HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"
        b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    first = await read_reply(reader)
    second = await read_reply(reader)
    third = await read_reply(reader, head_request=True)
    fourth = await read_reply(reader)
    assert (first.status, first.body) == (200, b"solo")
    assert json.loads(second.body)["path"] == "/echo"
    assert third.status == 200 and third.header("Content-Length") == "4"
    assert fourth.body == b"solo"
    assert await reader.read() == b""  # closed after the last, as asked
    writer.close()


async def test_head_then_get_on_one_connection(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    for _ in range(3):
        writer.write(b"HEAD /big?n=1000&cl=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await read_reply(reader, head_request=True)
        assert head.status == 200 and head.header("Content-Length") == "1000"
        writer.write(b"GET /big?n=1000&cl=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        full = await read_reply(reader)
        assert full.body == pattern(0, 1000)
    writer.close()


async def test_no_body_statuses(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    for code in (204, 304, 404, 503):
        writer.write(f"GET /status/{code} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        reply = await read_reply(reader)
        assert reply.status == code
    writer.close()


async def test_large_upload_streams_intact_content_length_and_chunked(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    data = pattern(0, 8 * 1024 * 1024)
    want = hashlib.sha256(data).hexdigest()
    url = f"http://127.0.0.1:{proxy.port}/upload"

    async def chunks() -> object:
        for i in range(0, len(data), 300_000):
            yield data[i : i + 300_000]

    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=data) as r:
            assert r.status == 200
            assert await r.json() == {"sha256": want, "size": len(data), "backend": "solo"}
        async with session.post(url, data=chunks()) as r:  # Transfer-Encoding: chunked
            assert r.status == 200
            assert (await r.json())["sha256"] == want


async def test_large_download_streams_intact(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    n = 6 * 1024 * 1024 + 7
    async with aiohttp.ClientSession() as session:
        for cl in ("", "1"):  # chunked from the backend, then Content-Length
            async with session.get(f"http://127.0.0.1:{proxy.port}/big?n={n}&cl={cl}") as r:
                assert r.status == 200
                body = await r.read()
            assert body == pattern(0, n)


async def test_http10_client_gets_close_delimited_body(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    reply = await raw_request(proxy.port, b"GET /big?n=100000 HTTP/1.0\r\n\r\n")
    assert reply.status == 200
    assert reply.header("Transfer-Encoding") is None
    assert reply.body == pattern(0, 100000)


async def test_expect_100_continue_is_answered_by_the_proxy(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = await reader.readuntil(b"\r\n\r\n")
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    writer.write(b"hello")
    reply = await read_reply(reader)
    seen = json.loads(reply.body)
    assert seen["body"] == "hello"
    assert "expect" not in {k.lower() for k, _ in seen["headers"]}
    writer.close()


async def test_cookie_and_query_pass_through(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    reply = await get(proxy.port, "/echo?a=1&b=%20", Cookie="x=1; y=2")
    seen = json.loads(reply.body)
    assert seen["path"] == "/echo?a=1&b=%20"
    assert dict((k.lower(), v) for k, v in seen["headers"])["cookie"] == "x=1; y=2"


async def test_upgrade_refused_by_the_backend_is_answered_plainly_then_closed(
    env: Env,
) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        b"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    reply = await read_reply(reader)
    assert reply.status == 200
    seen = {k.lower() for k, _ in json.loads(reply.body)["headers"]}
    assert "upgrade" in seen  # passed on; the backend did not switch (see test_proxy_websocket)
    assert reply.header("Connection") == "close"
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()
    assert (await get(proxy.port)).status == 200


async def test_slow_upload_within_the_read_timeout_between_pieces(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b], read_timeout=0.3))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n")
    for _ in range(5):  # 0.5 s in all, longer than the read timeout, a piece every 0.1 s
        await asyncio.sleep(0.1)
        writer.write(b"x" * 10)
    reply = await read_reply(reader)
    assert reply.status == 200 and json.loads(reply.body)["size"] == 50
    writer.close()
