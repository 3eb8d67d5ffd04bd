"""WebSocket (and other Upgrade) through the proxy: a real aiohttp client and server."""
# ruff: noqa: SIM117  (a session, then a WebSocket on it: clearer nested)

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from proxyhelpers import Env, make_spec, pattern, raw_request

from gslb.model import Backend
from gslb.proxy.server import ProxyServer


class WsBackend:
    """/ws echoes; /ws-bye answers one message with "bye" and closes (code 4000); /no
    refuses the upgrade with 403."""

    def __init__(self) -> None:
        self.port = 0
        self.client_close = asyncio.get_running_loop().create_future()
        self.headers: dict[str, str] = {}
        self._runner: web.AppRunner | None = None

    @property
    def backend(self) -> Backend:
        return Backend("ws", f"http://127.0.0.1:{self.port}", "127.0.0.1", self.port)

    async def start(self) -> WsBackend:
        app = web.Application()
        app.router.add_get("/ws", self._echo)
        app.router.add_get("/ws-bye", self._bye)
        app.router.add_get("/no", self._no)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _echo(self, request: web.Request) -> web.WebSocketResponse:
        self.headers = dict(request.headers)
        ws = web.WebSocketResponse(max_msg_size=4 << 20)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        if not self.client_close.done():
            self.client_close.set_result(ws.close_code)
        return ws

    async def _bye(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()
        await ws.send_str("bye")
        await ws.close(code=4000)
        return ws

    async def _no(self, request: web.Request) -> web.Response:
        return web.Response(status=403, text="nope")


@pytest.fixture
async def wsb() -> AsyncIterator[WsBackend]:
    b = await WsBackend().start()
    yield b
    await b.stop()


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait for a state of the proxy that no event tells (a gauge going down)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def metrics(proxy: ProxyServer) -> str:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{proxy.admin_port}/metrics") as r:
            return await r.text()


async def test_echo_text_binary_and_a_megabyte(env: Env, wsb: WsBackend) -> None:
    proxy = await env.proxy(make_spec([wsb]))  # type: ignore[list-item]
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(f"http://127.0.0.1:{proxy.port}/ws", max_msg_size=4 << 20) as ws,
    ):
        assert proxy.stats.tunnels_open == 1
        assert "gslb_proxy_tunnels_open 1.0" in await metrics(proxy)
        await ws.send_str("hello")
        assert await ws.receive_str(timeout=3) == "hello"
        await ws.send_bytes(b"\x00\x01\xff")
        assert await ws.receive_bytes(timeout=3) == b"\x00\x01\xff"
        big = pattern(0, 1 << 20)  # over every write buffer: flow control both ways
        await ws.send_bytes(big)
        assert await ws.receive_bytes(timeout=5) == big
        for i in range(20):  # many in flight at once
            await ws.send_str(f"m{i}")
        assert [await ws.receive_str(timeout=3) for _ in range(20)] == [f"m{i}" for i in range(20)]
    assert wsb.headers["Upgrade"].lower() == "websocket"
    assert "X-Forwarded-For" in wsb.headers
    await until(lambda: proxy.stats.tunnels_open == 0)
    assert "gslb_proxy_tunnels_open 0.0" in await metrics(proxy)
    assert proxy.stats.requests[("ws", 101)] == 1


async def test_backend_closing_closes_the_client(env: Env, wsb: WsBackend) -> None:
    proxy = await env.proxy(make_spec([wsb]))  # type: ignore[list-item]
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"http://127.0.0.1:{proxy.port}/ws-bye") as ws:
            await ws.send_str("hi")
            assert await ws.receive_str(timeout=3) == "bye"
            msg = await ws.receive(timeout=3)
            assert msg.type == WSMsgType.CLOSE and ws.close_code == 4000
    await until(lambda: proxy.stats.tunnels_open == 0)


async def test_client_closing_reaches_the_backend(env: Env, wsb: WsBackend) -> None:
    proxy = await env.proxy(make_spec([wsb]))  # type: ignore[list-item]
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(f"http://127.0.0.1:{proxy.port}/ws")
        await ws.send_str("x")
        assert await ws.receive_str(timeout=3) == "x"
        await ws.close(code=4001)
    assert await asyncio.wait_for(wsb.client_close, 3) == 4001
    await until(lambda: proxy.stats.tunnels_open == 0)


async def test_idle_tunnel_is_closed(env: Env, wsb: WsBackend) -> None:
    proxy = await env.proxy(make_spec([wsb], tunnel_idle_timeout=0.3))  # type: ignore[list-item]
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"http://127.0.0.1:{proxy.port}/ws", autoping=False) as ws:
            await ws.send_str("x")
            assert await ws.receive_str(timeout=3) == "x"
            started = loop.time()
            msg = await ws.receive(timeout=5)
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)
            assert loop.time() - started >= 0.25
    await until(lambda: proxy.stats.tunnels_open == 0)


async def test_an_answer_other_than_101_is_relayed(env: Env, wsb: WsBackend) -> None:
    proxy = await env.proxy(make_spec([wsb]))  # type: ignore[list-item]
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await s.ws_connect(f"http://127.0.0.1:{proxy.port}/no")
    assert e.value.status == 403
    reply = await raw_request(
        proxy.port,
        b"GET /no HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    assert reply.status == 403 and reply.body == b"nope"
    assert reply.header("Connection") == "close"
    assert proxy.stats.tunnels_open == 0


async def test_drain_waits_for_a_tunnel(env: Env, wsb: WsBackend) -> None:
    proxy = await env.proxy(make_spec([wsb], drain_timeout=10))  # type: ignore[list-item]
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(f"http://127.0.0.1:{proxy.port}/ws")
        drain = asyncio.create_task(proxy.drain())
        await ws.send_str("still here")  # the tunnel works while draining
        assert await ws.receive_str(timeout=3) == "still here"
        assert not drain.done()
        await ws.close()
    assert await asyncio.wait_for(drain, 3) is True


async def test_drain_timeout_cuts_a_tunnel(env: Env, wsb: WsBackend) -> None:
    proxy = await env.proxy(make_spec([wsb], drain_timeout=0.3))  # type: ignore[list-item]
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"http://127.0.0.1:{proxy.port}/ws") as ws:
            assert await proxy.drain() is False
            msg = await ws.receive(timeout=3)
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)
    await until(lambda: proxy.stats.tunnels_open == 0)
