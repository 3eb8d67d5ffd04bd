"""Connection caps: the proxy-wide max_connections (stop accepting, the kernel's backlog
queues) and a backend's max_connections (requests wait up to queue_timeout, then 503)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace

import aiohttp
import pytest
from prometheus_client import generate_latest
from proxyhelpers import Env, get, make_spec, read_reply

from gslb.proxy.server import ProxyServer


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def queued(proxy: ProxyServer) -> int:
    return int(proxy.status()["backends"][0]["queued"])


async def test_at_max_connections_the_proxy_stops_accepting_until_one_closes(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "gslb.proxy.listener")
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b], max_connections=5))
    slow = []
    for _ in range(5):  # each sends half a request head and then nothing
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n")
        slow.append((reader, writer))
    await wait_until(lambda: proxy.stats.client_connections == 5 and not proxy.accepting)

    # A sixth connects (the kernel's backlog holds it) but is not accepted: no answer.
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    waiting = asyncio.ensure_future(read_reply(reader))
    done, _ = await asyncio.wait([waiting], timeout=0.3)
    assert not done
    assert proxy.stats.client_connections == 5

    # The admin port is a separate server: it answers meanwhile.
    health = f"http://127.0.0.1:{proxy.admin_port}/health"
    async with aiohttp.ClientSession() as s, s.get(health) as r:
        assert r.status == 200
    assert proxy.stats.accept_paused == 1
    assert b"gslb_proxy_accept_paused_total 1.0" in generate_latest(proxy.registry)

    _, first = slow.pop()
    first.close()  # a slot frees: the sixth is accepted and served
    reply = await asyncio.wait_for(waiting, 5)
    assert (reply.status, reply.body) == (200, b"solo")
    # Accepting the sixth reached the cap again: counted again, but logged once a minute.
    assert proxy.stats.accept_paused == 2
    warned = [r for r in caplog.records if "max_connections (5) reached" in r.getMessage()]
    assert len(warned) == 1
    writer.close()
    for _, w in slow:
        w.close()
    await wait_until(lambda: proxy.stats.client_connections == 0 and proxy.accepting)
    assert (await get(proxy.port)).status == 200


async def test_a_request_beyond_a_backends_cap_waits_for_a_slot(env: Env) -> None:
    b = await env.backend("solo")
    capped = replace(b.backend, max_connections=1)
    proxy = await env.proxy(replace(make_spec([b], queue_timeout=5.0), backends=(capped,)))
    first = asyncio.ensure_future(get(proxy.port, "/wait"))
    await b.entered.wait()
    second = asyncio.ensure_future(get(proxy.port, "/wait"))
    await wait_until(lambda: queued(proxy) == 1)
    assert b.hits == 1  # the second is held by the proxy, not sent
    b.release.set()  # the first ends; the second takes its slot
    replies = await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert [r.status for r in replies] == [200, 200]
    assert (b.hits, b.max_in_flight) == (2, 1)
    assert queued(proxy) == 0


async def test_a_request_waiting_longer_than_queue_timeout_gets_503(env: Env) -> None:
    b = await env.backend("solo")
    capped = replace(b.backend, max_connections=1)
    proxy = await env.proxy(replace(make_spec([b], queue_timeout=0.2), backends=(capped,)))
    first = asyncio.ensure_future(get(proxy.port, "/wait"))
    await b.entered.wait()
    started = time.monotonic()
    reply = await asyncio.wait_for(get(proxy.port, "/"), 5)
    assert reply.status == 503
    assert time.monotonic() - started >= 0.2
    assert b.hits == 1
    assert proxy.stats.queue_timeouts == 1
    assert queued(proxy) == 0
    assert b"gslb_proxy_queue_timeouts_total 1.0" in generate_latest(proxy.registry)
    b.release.set()
    assert (await asyncio.wait_for(first, 5)).status == 200
    assert (await get(proxy.port)).status == 200  # the slot is free again


async def test_a_reload_that_raises_a_backends_cap_lets_waiting_requests_go(env: Env) -> None:
    b = await env.backend("solo")
    spec = replace(make_spec([b]), backends=(replace(b.backend, max_connections=1),))
    proxy = await env.proxy(spec)
    first = asyncio.ensure_future(get(proxy.port, "/wait"))
    await b.entered.wait()
    second = asyncio.ensure_future(get(proxy.port, "/wait"))
    await wait_until(lambda: queued(proxy) == 1)
    proxy.reload(replace(spec, backends=(replace(b.backend, max_connections=2),)))
    await wait_until(lambda: b.in_flight == 2)  # the waiting one went on at once
    assert queued(proxy) == 0
    b.release.set()
    replies = await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert [r.status for r in replies] == [200, 200]
