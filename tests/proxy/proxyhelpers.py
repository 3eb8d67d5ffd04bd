"""Fixtures for the proxy tests: real backends that say who they are, real proxies, clients.

Everything listens on 127.0.0.0/8 only, on ports the kernel picks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web

from gslb.model import Backend, HostPort, ProxyMethod, ProxySpec
from gslb.proxy.lifecycle import Transitions
from gslb.proxy.server import ProxyServer

TOKEN = "test-token"


class TestBackend:
    """A small aiohttp server. GET / answers its name; see `_handler` for the rest."""

    __test__ = False  # not a test class

    def __init__(
        self, name: str, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.name = name
        self.host = host
        self.ssl_context = ssl_context  # set: it speaks HTTPS
        self.port = 0
        self.healthy = True
        self.status = 200  # what GET / answers with
        self.hits = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.peers: set[tuple[str, int]] = set()
        self.last_headers: dict[str, str] = {}
        self.last_raw_headers: list[tuple[str, str]] = []
        self.release = asyncio.Event()  # /wait blocks until this is set
        self.entered = asyncio.Event()  # set when a /wait request arrived
        self.read_delay = 0.0  # /upload sleeps this long between chunks
        self._runner: web.AppRunner | None = None

    @property
    def backend(self) -> Backend:
        scheme = "https" if self.ssl_context is not None else "http"
        return Backend(self.name, f"{scheme}://{self.host}:{self.port}", self.host, self.port)

    async def start(self) -> TestBackend:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handler)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.host, self.port, reuse_address=True, ssl_context=self.ssl_context
        )
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Kill it: stop listening and drop its connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handler(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/health":
            return web.Response(status=200 if self.healthy else 503, text=self.name)
        self.hits += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.peers.add((peer[0], peer[1]))
        self.last_headers = dict(request.headers)
        self.last_raw_headers = [(k, v) for k, v in request.headers.items()]
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        headers = {"X-Backend": self.name}
        if path == "/slow":
            await asyncio.sleep(float(request.query.get("s", "0.2")))
        elif path == "/wait":
            self.entered.set()
            await self.release.wait()
        elif path == "/upload":
            digest = hashlib.sha256()
            size = 0
            async for chunk in request.content.iter_chunked(65536):
                digest.update(chunk)
                size += len(chunk)
                if self.read_delay:
                    await asyncio.sleep(self.read_delay)
            body = {"sha256": digest.hexdigest(), "size": size, "backend": self.name}
            return web.json_response(body, headers=headers)
        elif path == "/big":
            n = int(request.query["n"])
            response = web.StreamResponse(headers=headers)
            if request.query.get("cl"):
                response.content_length = n
            await response.prepare(request)
            sent = 0
            while sent < n:
                piece = pattern(sent, min(65536, n - sent))
                await response.write(piece)
                sent += len(piece)
            await response.write_eof()
            return response
        elif path == "/echo":
            body = {
                "method": request.method,
                "path": request.path_qs,
                "headers": [[k, v] for k, v in request.headers.items()],
                "body": (await request.read()).decode("latin-1"),
                "backend": self.name,
            }
            return web.Response(text=json.dumps(body), headers=headers)
        elif path == "/reset":  # a request this backend chokes on: the connection is reset
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        elif path.startswith("/status/"):
            return web.Response(status=int(path.rsplit("/", 1)[1]), headers=headers)
        return web.Response(status=self.status, text=self.name, headers=headers)


def pattern(offset: int, size: int) -> bytes:
    """Deterministic bytes for position `offset` onwards (so corruption is visible)."""
    block = bytes(range(256))
    start = offset % 256
    reps = (start + size) // 256 + 1
    return (block * reps)[start : start + size]


def make_spec(
    backends: list[TestBackend], method: ProxyMethod = "round_robin", **kw: Any
) -> ProxySpec:
    spec = ProxySpec(
        listen=HostPort("127.0.0.1", 0),
        admin=HostPort("127.0.0.1", 0),
        method=method,
        backends=tuple(b.backend for b in backends),
        cooldown=0.5,
    )
    return replace(spec, **kw)


@dataclass
class Env:
    """Backends and proxies of one test; all stopped at the end."""

    backends: list[TestBackend] = field(default_factory=list)
    proxies: list[ProxyServer] = field(default_factory=list)

    async def backend(
        self, name: str, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
    ) -> TestBackend:
        b = await TestBackend(name, host, ssl_context).start()
        self.backends.append(b)
        return b

    async def three(self) -> list[TestBackend]:
        return [await self.backend(f"b{i}", f"127.0.0.{i + 1}") for i in range(3)]

    async def proxy(self, spec: ProxySpec, token: str | None = TOKEN) -> ProxyServer:
        server = ProxyServer(spec, token=token)
        await server.start()
        self.proxies.append(server)
        return server


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    e = Env()
    yield e
    for p in e.proxies:
        await p.close()
    for b in e.backends:
        b.release.set()
        await b.stop()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


async def read_reply(reader: asyncio.StreamReader, head_request: bool = False) -> Reply:
    """One HTTP/1.1 response off a raw stream (Content-Length, chunked or to EOF)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = [tuple(x.split(": ", 1)) for x in lines[1:] if x]
    reply = Reply(status, [(k, v) for k, v in headers], b"")
    if head_request or status in (204, 304) or 100 <= status < 200:
        return reply
    length = reply.header("Content-Length")
    if length is not None:
        body = await reader.readexactly(int(length))
    elif (reply.header("Transfer-Encoding") or "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readline()).strip(), 16)
            if size == 0:
                await reader.readline()
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = await reader.read()
    return Reply(status, reply.headers, body)


async def raw_request(
    port: int,
    request: bytes,
    source: str | None = None,
    head_request: bool = False,
) -> Reply:
    """Send `request` bytes on a fresh connection (from `source`), read one response."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(source, 0) if source else None
    )
    try:
        writer.write(request)
        await writer.drain()
        return await read_reply(reader, head_request)
    finally:
        writer.close()


async def get(port: int, path: str = "/", source: str | None = None, **headers: str) -> Reply:
    lines = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    req = f"GET {path} HTTP/1.1\r\nHost: test\r\n{lines}Connection: close\r\n\r\n"
    return await raw_request(port, req.encode(), source)


async def gather_limited(n: int, limit: int, make: Callable[[int], Awaitable[Any]]) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(i: int) -> Any:
        async with semaphore:
            return await make(i)

    return await asyncio.gather(*(one(i) for i in range(n)))


class RecordedMoves(Transitions[Any, Any]):
    """A transition table (gslb.proxy.lifecycle's kind) that records the event of every move
    made through it: monkeypatched in for the table a proxy module subscripts."""

    def __init__(self, table: Transitions[Any, Any]) -> None:
        super().__init__(table)
        self.events: list[Any] = []

    def __getitem__(self, key: tuple[Any, Any]) -> Any:
        self.events.append(key[1])
        return super().__getitem__(key)
