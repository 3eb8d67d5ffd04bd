"""Backends leave and return: passive marks on errors, active checks with rise/fall."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

import pytest
from proxyhelpers import Env, get, make_spec, raw_request

from gslb.model import CheckSpec
from gslb.proxy.server import ProxyServer


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll a condition the proxy exposes no event for (health flips happen on timers)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def state(proxy: ProxyServer, name: str) -> dict[str, object]:
    return next(b for b in proxy.status()["backends"] if b["name"] == name)


async def keep_getting(port: int, stop: asyncio.Event, log: list[tuple[int, bytes]]) -> None:
    while not stop.is_set():
        reply = await get(port)
        log.append((reply.status, reply.body))


async def test_dead_backend_costs_no_failed_get_and_returns(env: Env) -> None:
    backends = await env.three()
    proxy = await env.proxy(make_spec(backends, fail_threshold=2, cooldown=0.3))
    victim = backends[1]
    port = victim.port
    await victim.stop()
    replies = [await get(proxy.port) for _ in range(60)]
    assert all(r.status == 200 for r in replies)
    assert Counter(r.body for r in replies)[b"b1"] == 0
    assert proxy.stats.retries >= 2
    # It was taken out after two connection errors, not retried on every request.
    assert proxy.stats.retries < 10
    # Back on the same port: after the cool-down it is tried again and gets traffic.
    victim.port = port
    await victim.start()
    await wait_until(lambda: not state(proxy, "b1")["passive_out"])
    seen = Counter([(await get(proxy.port)).body for _ in range(30)])
    assert seen[b"b1"] >= 5
    text = await metrics_text(proxy)
    assert 'gslb_proxy_health_changes_total{backend="b1",to="down"}' in text


async def metrics_text(proxy: ProxyServer) -> str:
    request = b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    return (await raw_request(proxy.admin_port, request)).body.decode()


async def test_backend_answering_5xx_is_taken_out_for_a_cooldown(env: Env) -> None:
    backends = await env.three()
    proxy = await env.proxy(make_spec(backends, fail_threshold=3, cooldown=0.3))
    backends[2].status = 500
    # From distinct clients: one client's 5xx count once (see test_proxy_passive.py).
    replies = [await get(proxy.port, source=f"127.0.1.{i + 1}") for i in range(30)]
    failed = [r for r in replies if r.status == 500]
    assert len(failed) == 3  # exactly the threshold reached the client, then it was out
    assert state(proxy, "b2")["passive_out"] is True
    backends[2].status = 200
    await wait_until(lambda: not state(proxy, "b2")["passive_out"])
    seen = Counter([(await get(proxy.port)).body for _ in range(9)])
    assert seen[b"b2"] == 3


async def test_active_checks_take_a_backend_out_and_back(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gslb.proxy.server")
    backends = await env.three()
    check = CheckSpec(kind="http", path="/health", interval=0.05, timeout=0.5, rise=2, fall=2)
    proxy = await env.proxy(make_spec(backends, health=check))
    stop = asyncio.Event()
    log: list[tuple[int, bytes]] = []
    traffic = asyncio.create_task(keep_getting(proxy.port, stop, log))
    try:
        backends[0].healthy = False
        await wait_until(lambda: state(proxy, "b0")["healthy"] is False)
        hits = backends[0].hits
        mark = len(log)
        await wait_until(lambda: len(log) >= mark + 20)
        assert backends[0].hits == hits  # no traffic while it is down
        assert "503" in str(state(proxy, "b0")["health_detail"])
        backends[0].healthy = True
        await wait_until(lambda: state(proxy, "b0")["healthy"] is True)
        await wait_until(lambda: backends[0].hits > hits + 3)
    finally:
        stop.set()
        await traffic
    assert log and all(status == 200 for status, _ in log)  # nobody saw a failure
    flips = [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.getMessage().startswith("backend b0")
    ]
    assert flips == [("WARNING", "backend b0 is down"), ("INFO", "backend b0 is up")]  # back: INFO


async def test_health_is_503_when_no_backend_is_left(env: Env) -> None:
    backends = await env.three()
    check = CheckSpec(kind="http", path="/health", interval=0.05, timeout=0.5, rise=1, fall=1)
    proxy = await env.proxy(make_spec(backends, health=check))
    health = b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    assert (await raw_request(proxy.admin_port, health)).status == 200
    for b in backends:
        b.healthy = False
    await wait_until(lambda: not proxy.healthy()[0])
    assert (await raw_request(proxy.admin_port, health)).status == 503
    assert (await get(proxy.port)).status == 502
    backends[1].healthy = True
    await wait_until(lambda: proxy.healthy()[0])
    assert (await get(proxy.port)).body == b"b1"
