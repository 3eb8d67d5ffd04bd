"""The admin port: health, status, metrics, token-protected drain and enable; draining."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import aiohttp
from proxyhelpers import TOKEN, Env, get, make_spec, read_reply

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_health_status_and_metrics(env: Env) -> None:
    backends = await env.three()
    proxy = await env.proxy(make_spec(backends))
    for _ in range(6):
        assert (await get(proxy.port)).status == 200
    assert (await get(proxy.port, "/status/503")).status == 503
    base = f"http://127.0.0.1:{proxy.admin_port}"
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/health") as r:
            assert r.status == 200
        async with s.get(f"{base}/status") as r:
            status = await r.json()
        async with s.get(f"{base}/metrics") as r:
            assert r.status == 200
            metrics = await r.text()
    assert status["method"] == "round_robin" and status["draining"] is False
    rows = {b["name"]: b for b in status["backends"]}
    assert set(rows) == {"b0", "b1", "b2"}
    assert sum(b["requests"] for b in rows.values()) == 7
    assert abs(sum(b["share"] for b in rows.values()) - 1.0) < 0.01
    assert all(b["in_flight"] == 0 and b["available"] for b in rows.values())
    assert 'gslb_proxy_requests_total{backend="b0",code="200"} 2.0' in metrics
    assert re.search(r'gslb_proxy_requests_total\{backend="b\d",code="503"\} 1.0', metrics)
    assert 'gslb_proxy_request_duration_seconds_bucket{le="+Inf"} 7.0' in metrics
    assert 'gslb_proxy_open_connections{side="client"}' in metrics
    assert "gslb_proxy_retries_total 0.0" in metrics


async def test_mutations_need_the_token(env: Env) -> None:
    backends = await env.three()
    proxy = await env.proxy(make_spec(backends))
    base = f"http://127.0.0.1:{proxy.admin_port}"
    async with aiohttp.ClientSession() as s:
        for path in ("/drain", "/backends/b0/drain", "/backends/b0/enable"):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                async with s.post(base + path, headers=headers) as r:
                    assert r.status == 401
                    assert (await r.json())["error"] == "unauthorized"
        async with s.post(f"{base}/backends/nosuch/drain", headers=AUTH) as r:
            assert r.status == 404
            assert "nosuch" in (await r.json())["detail"]
    assert not proxy.draining
    assert all(b.available for b in proxy._backends())


async def test_no_token_configured_refuses_every_mutation(env: Env) -> None:
    backends = await env.three()
    proxy = await env.proxy(make_spec(backends), token=None)
    async with aiohttp.ClientSession() as s:
        url = f"http://127.0.0.1:{proxy.admin_port}/drain"
        async with s.post(url, headers={"Authorization": "Bearer "}) as r:
            assert r.status == 401


async def test_drained_backend_finishes_in_flight_and_gets_nothing_new(env: Env) -> None:
    backends = await env.three()
    proxy = await env.proxy(make_spec(backends))
    b0 = backends[0]
    long = asyncio.create_task(get(proxy.port, "/wait"))  # round robin: this one goes to b0
    await asyncio.wait_for(b0.entered.wait(), 3)
    base = f"http://127.0.0.1:{proxy.admin_port}"
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/backends/b0/drain", headers=AUTH) as r:
            assert r.status == 200 and (await r.json())["drained"] is True
        async with s.get(f"{base}/status") as r:
            row = next(b for b in (await r.json())["backends"] if b["name"] == "b0")
            assert row["drained"] and row["in_flight"] == 1 and not row["available"]
        hits = b0.hits
        seen = Counter([(await get(proxy.port)).body for _ in range(10)])
        assert seen == {b"b1": 5, b"b2": 5}
        assert b0.hits == hits
        b0.release.set()
        reply = await long
        assert (reply.status, reply.body) == (200, b"b0")  # the in-flight one finished
        async with s.post(f"{base}/backends/b0/enable", headers=AUTH) as r:
            assert r.status == 200
    seen = Counter([(await get(proxy.port)).body for _ in range(9)])
    assert seen[b"b0"] == 3


async def test_draining_the_proxy_finishes_in_flight_then_stops(env: Env) -> None:
    backends = await env.three()
    proxy = await env.proxy(make_spec(backends, drain_timeout=5))
    for b in backends:
        b.release.clear()
    longs = [asyncio.create_task(get(proxy.port, "/wait")) for _ in range(3)]
    for b in backends:
        await asyncio.wait_for(b.entered.wait(), 3)
    # an idle keep-alive client connection is closed by the drain
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await read_reply(reader)).status == 200
    base = f"http://127.0.0.1:{proxy.admin_port}"
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/drain", headers=AUTH) as r:
            assert r.status == 202
        assert await asyncio.wait_for(reader.read(), 3) == b""
        async with s.get(f"{base}/health") as r:
            assert r.status == 503
            assert (await r.json())["detail"] == "draining"
        try:
            await get(proxy.port)
            refused = False
        except OSError:
            refused = True
        assert refused  # no longer accepting
        assert not proxy.finished.is_set()
        for b in backends:
            b.release.set()
        replies = await asyncio.gather(*longs)
    assert sorted(r.body for r in replies) == [b"b0", b"b1", b"b2"]
    assert all(r.status == 200 and r.header("Connection") == "close" for r in replies)
    await asyncio.wait_for(proxy.finished.wait(), 3)
    writer.close()


async def test_drain_timeout_cuts_what_is_left(env: Env) -> None:
    b = await env.backend("stuck")
    proxy = await env.proxy(make_spec([b], drain_timeout=0.2))
    long = asyncio.create_task(get(proxy.port, "/wait"))
    await asyncio.wait_for(b.entered.wait(), 3)
    clean = await proxy.drain()
    assert clean is False
    try:
        await long
        cut = False
    except (asyncio.IncompleteReadError, ConnectionError):
        cut = True
    assert cut


async def test_drain_answers_a_request_on_an_idle_connection_then_closes(env: Env) -> None:
    backends = await env.three()
    spec = make_spec(backends, drain_grace=0.3, drain_close_spread=0.2, drain_timeout=5.0)
    proxy = await env.proxy(spec)
    request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    conns = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(2)]
    for reader, writer in conns:
        writer.write(request)
        reply = await read_reply(reader)
        assert reply.status == 200 and reply.header("Connection") != "close"  # kept alive
    proxy.request_drain()
    await asyncio.sleep(0)  # the drain task runs: both connections are idle now
    assert proxy.draining
    # A request written on an idle connection after the drain began is answered, and told
    # to close; the connection closes after it.
    reader, writer = conns[0]
    writer.write(request)
    reply = await read_reply(reader)
    assert reply.status == 200 and reply.header("Connection") == "close"
    assert await reader.read() == b""
    # The other one sends nothing: the proxy closes it after the grace, cleanly.
    started = asyncio.get_running_loop().time()
    reader, writer = conns[1]
    assert await asyncio.wait_for(reader.read(), 3) == b""
    assert asyncio.get_running_loop().time() - started >= 0.25
    await asyncio.wait_for(proxy.finished.wait(), 3)
    for _, w in conns:
        w.close()
