"""The access log's buffering, with a real proxy, a real backend and a real HTTP client:
every line arrives and in order across many chunks, and a writer stuck on a full pipe
neither stalls requests nor lets memory grow (lines beyond the bound are dropped, counted)."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from collections.abc import Awaitable
from pathlib import Path

import aiohttp
import pytest
from proxyhelpers import Env, make_spec

from gslb.model import AccessLogSpec
from gslb.proxy import accesslog


async def get_many(port: int, paths: list[str]) -> list[int]:
    """GET each path in turn on one keep-alive connection; the statuses."""
    statuses = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        for path in paths:
            async with session.get(f"http://127.0.0.1:{port}{path}") as reply:
                await reply.read()
                statuses.append(reply.status)
    return statuses


def logged_paths(text: bytes) -> list[str]:
    return [json.loads(line)["path"] for line in text.decode().splitlines()]


async def test_lines_arrive_all_and_in_order_across_many_chunks(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accesslog, "BUFFER", 1000)  # a chunk every few lines
    b = await env.backend("solo")
    path = tmp_path / "access.log"
    proxy = await env.proxy(make_spec([b], access_log=AccessLogSpec(str(path), "json")))
    paths = [f"/{i}" for i in range(300)]
    assert await get_many(proxy.port, paths) == [200] * 300
    assert proxy.access_log is not None
    await proxy.access_log.flush()
    assert logged_paths(path.read_bytes()) == paths
    assert proxy.stats.access_log_dropped == 0


async def read_fifo_until(fd: int, done: Awaitable[None]) -> bytes:
    """Read the pipe's non-blocking end while `done` is pending, then what is left."""
    loop = asyncio.get_running_loop()
    got = bytearray()

    def readable() -> None:
        while True:
            try:
                piece = os.read(fd, 65536)
            except BlockingIOError:
                return
            if not piece:
                return
            got.extend(piece)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
    readable()
    return bytes(got)


async def test_a_blocked_writer_stalls_no_request_and_the_bound_holds(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    capacity = 40
    monkeypatch.setattr(accesslog, "CAPACITY", capacity)
    monkeypatch.setattr(accesslog, "BUFFER", 1)  # a chunk per line: the writer blocks soon
    fifo = tmp_path / "access.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so that the proxy's open succeeds
    try:
        fcntl.fcntl(reader, fcntl.F_SETPIPE_SZ, 4096)  # room for about a dozen lines
        b = await env.backend("solo")
        proxy = await env.proxy(make_spec([b], access_log=AccessLogSpec(str(fifo), "json")))
        log = proxy.access_log
        assert log is not None
        n = 200
        paths = [f"/{i}" for i in range(n)]
        # Nothing reads the pipe: the writer thread is stuck in os.write. Every request
        # is still answered, promptly.
        statuses = await asyncio.wait_for(get_many(proxy.port, paths), 30)
        assert statuses == [200] * n
        dropped = proxy.stats.access_log_dropped
        assert dropped >= n - capacity - 20  # at most the bound and the pipe's share kept
        text = await read_fifo_until(reader, log.flush())
    finally:
        os.close(reader)
    got = logged_paths(text)
    assert len(got) == n - dropped  # every line not counted as dropped arrived
    assert got == paths[: len(got)]  # the first ones, in order (later ones were dropped)
