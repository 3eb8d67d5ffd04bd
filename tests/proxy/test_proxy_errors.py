"""What goes wrong: malformed input, limits, slow clients, slow and dead backends, retries."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from proxyhelpers import Env, get, make_spec, raw_request, read_reply

from gslb.model import Backend
from gslb.proxy import exchange


async def test_malformed_requests_get_400_and_the_proxy_keeps_serving(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    garbage = [
        b"NOT A REQUEST\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"\x00\x01\x02\xff" * 10,
    ]
    for request in garbage:
        reply = await raw_request(proxy.port, request)
        assert reply.status == 400, request
        assert reply.header("Connection") == "close"
    assert (await get(proxy.port)).body == b"solo"


async def test_connect_method_is_refused(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    reply = await raw_request(proxy.port, b"CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.status in (400, 405)
    assert b.hits == 0


async def test_header_limits_give_431(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b], max_headers=20, max_header_bytes=2048))
    many = "".join(f"X-{i}: v\r\n" for i in range(25))
    reply = await raw_request(proxy.port, f"GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n".encode())
    assert reply.status == 431
    big = "X-Big: " + "a" * 3000 + "\r\n"
    reply = await raw_request(proxy.port, f"GET / HTTP/1.1\r\nHost: t\r\n{big}\r\n".encode())
    assert reply.status == 431
    long_target = "/" + "a" * 3000
    reply = await raw_request(proxy.port, f"GET {long_target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    assert reply.status == 431
    assert b.hits == 0
    assert (await get(proxy.port)).status == 200


async def test_endless_header_stream_is_cut_at_the_limit(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b], max_header_bytes=4096))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nX-Endless: ")
    for _ in range(10):
        writer.write(b"a" * 1024)  # one header value that never ends
    reply = await read_reply(reader)
    assert reply.status == 431
    writer.close()


async def test_slowloris_gets_408_and_is_closed(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b], client_timeout=0.3))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    started = time.monotonic()
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n")
    for _ in range(3):
        await asyncio.sleep(0.05)
        writer.write(b"X-Drip: 1\r\n")  # a byte now and then, never the end of the head
    reply = await asyncio.wait_for(read_reply(reader), 3)
    assert reply.status == 408
    assert await reader.read() == b""
    assert 0.25 < time.monotonic() - started < 2.0
    writer.close()
    assert b.hits == 0


async def test_idle_keep_alive_connection_is_closed(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b], idle_timeout=0.2))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await read_reply(reader)).status == 200
    assert await asyncio.wait_for(reader.read(), 3) == b""  # closed quietly, no 408
    writer.close()


async def test_backend_read_timeout_gives_504(env: Env) -> None:
    b = await env.backend("slow")
    proxy = await env.proxy(make_spec([b], read_timeout=0.2))
    started = time.monotonic()
    reply = await get(proxy.port, "/slow?s=3")
    assert reply.status == 504
    assert time.monotonic() - started < 2
    assert (await get(proxy.port, "/slow?s=0.01")).status == 200


async def test_total_timeout_gives_504(env: Env) -> None:
    b = await env.backend("slow")
    proxy = await env.proxy(make_spec([b], total_timeout=0.3, read_timeout=5))
    reply = await get(proxy.port, "/slow?s=3")
    assert reply.status == 504


async def test_no_backend_left_gives_502(env: Env) -> None:
    b = await env.backend("dead")
    proxy = await env.proxy(make_spec([b]))
    await b.stop()
    reply = await get(proxy.port)
    assert reply.status == 502
    assert b"backend" in reply.body


async def test_idempotent_request_is_retried_on_another_backend(env: Env) -> None:
    dead, alive = await env.backend("dead"), await env.backend("alive")
    proxy = await env.proxy(make_spec([dead, alive], fail_threshold=100))
    await dead.stop()
    for _ in range(6):  # round robin: half of these are first sent to the dead one
        reply = await get(proxy.port)
        assert (reply.status, reply.body) == (200, b"alive")
    assert proxy.stats.retries == 3


async def test_post_is_not_retried(env: Env) -> None:
    dead, alive = await env.backend("dead"), await env.backend("alive")
    proxy = await env.proxy(make_spec([dead, alive], fail_threshold=100))
    await dead.stop()
    statuses = []
    for _ in range(4):
        req = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        statuses.append((await raw_request(proxy.port, req)).status)
    assert sorted(statuses) == [200, 200, 502, 502]
    assert proxy.stats.retries == 0


async def test_client_going_away_mid_request_releases_the_backend(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    _reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
    await asyncio.wait_for(b.entered.wait(), 3)
    writer.close()
    state = proxy._backends()[0]
    for _ in range(100):
        if state.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert state.in_flight == 0
    b.release.set()
    assert (await get(proxy.port)).status == 200


class OneRequestPerConnection:
    """A backend that answers the first request of each connection with keep-alive, then
    closes the connection when a second one arrives, without answering it: what a request
    meets when it is written just as the backend closes an idle keep-alive connection."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> Backend:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return Backend("once", f"http://127.0.0.1:{port}", "127.0.0.1", port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.lower().split(b"\r\n")
        sizes = [int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:")]
        length = sizes[0] if sizes else 0
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read(1)  # the next request (or the proxy closing): close unanswered
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_post_takes_a_new_connection_after_the_idle_one_aged(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exchange, "UNSAFE_REUSE_WITHIN", 0.2)  # 1 s by default
    backend = OneRequestPerConnection()
    spec = replace(make_spec([], fail_threshold=100), backends=(await backend.start(),))
    proxy = await env.proxy(spec)
    post = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
    try:
        assert (await raw_request(proxy.port, post)).status == 200
        assert backend.connections == 1  # and that connection is now idle in the pool
        await asyncio.sleep(0.3)  # the pooled connection ages past the reuse limit
        assert (await raw_request(proxy.port, post)).status == 200  # on a new connection
        assert backend.connections == 2
        # Within the limit a POST does reuse the pooled connection, and this backend then
        # closes it unanswered: not retried (it may have been acted on), so 502.
        assert (await raw_request(proxy.port, post)).status == 502
        assert backend.connections == 2
    finally:
        await backend.stop()
