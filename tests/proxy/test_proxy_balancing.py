"""Each method spreads traffic as it promises, over real sockets with three backends."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace

from proxyhelpers import Env, get, make_spec


def backend_of(reply_body: bytes) -> str:
    return reply_body.decode()


async def test_round_robin_is_exact(env: Env) -> None:
    backends = await env.three()
    proxy = await env.proxy(make_spec(backends, "round_robin"))
    seen = [backend_of((await get(proxy.port)).body) for _ in range(30)]
    assert seen[:3] == ["b0", "b1", "b2"]
    assert Counter(seen) == {"b0": 10, "b1": 10, "b2": 10}


async def test_weighted_is_smooth_and_proportional(env: Env) -> None:
    backends = await env.three()
    spec = make_spec(backends, "weighted")
    spec = replace(
        spec,
        backends=(
            replace(spec.backends[0], weight=5),
            spec.backends[1],
            spec.backends[2],
        ),
    )
    proxy = await env.proxy(spec)
    seen = [backend_of((await get(proxy.port)).body) for _ in range(70)]
    assert Counter(seen) == {"b0": 50, "b1": 10, "b2": 10}
    # smooth, exactly as nginx interleaves 5,1,1: a a b a c a a
    assert seen[:7] == ["b0", "b0", "b1", "b0", "b2", "b0", "b0"]


async def test_least_conn_sends_little_to_a_slow_backend(env: Env) -> None:
    backends = await env.three()
    proxy = await env.proxy(make_spec(backends, "least_conn"))

    async def client(n: int) -> list[str]:
        got = []
        for _ in range(n):
            reply = await get(proxy.port, "/slow?s=0.005")
            got.append(backend_of(reply.body))
        return got

    # b0 is slow for every request it gets
    slow = backends[0]

    original = slow._answer

    async def slow_answer(request):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.3)
        return await original(request)

    slow._answer = slow_answer  # type: ignore[method-assign]
    results = await asyncio.gather(*(client(15) for _ in range(6)))
    seen = Counter(x for r in results for x in r)
    assert sum(seen.values()) == 90
    assert seen["b0"] <= 12, seen  # the slow one holds few requests at a time
    assert seen["b1"] >= 30 and seen["b2"] >= 30, seen
    assert abs(seen["b1"] - seen["b2"]) <= 15, seen  # ties broken fairly


async def test_least_conn_ties_rotate(env: Env) -> None:
    backends = await env.three()
    proxy = await env.proxy(make_spec(backends, "least_conn"))
    seen = [backend_of((await get(proxy.port)).body) for _ in range(30)]
    assert Counter(seen) == {"b0": 10, "b1": 10, "b2": 10}


def sources(n: int) -> list[str]:
    return [f"127.0.{1 + i // 200}.{1 + i % 200}" for i in range(n)]


async def test_ip_hash_is_stable_spread_and_consistent(env: Env) -> None:
    backends = await env.three()
    proxy = await env.proxy(make_spec(backends, "ip_hash"))
    clients = sources(240)

    async def route(source: str) -> str:
        return backend_of((await get(proxy.port, source=source)).body)

    first = dict(zip(clients, await asyncio.gather(*map(route, clients)), strict=True))
    again = dict(zip(clients, await asyncio.gather(*map(route, clients)), strict=True))
    assert first == again  # the same client always lands on the same backend
    share = Counter(first.values())
    assert all(share[b] >= 240 * 0.2 for b in ("b0", "b1", "b2")), share

    # Losing one backend moves only its own clients.
    assert proxy.set_backend_drained("b1", True)
    after = dict(zip(clients, await asyncio.gather(*map(route, clients)), strict=True))
    for client, was in first.items():
        if was != "b1":
            assert after[client] == was, client
        else:
            assert after[client] in ("b0", "b2")
    # and its clients come back to it when it returns
    assert proxy.set_backend_drained("b1", False)
    back = dict(zip(clients, await asyncio.gather(*map(route, clients)), strict=True))
    assert back == first


async def test_sticky_cookie_keeps_and_moves_clients(env: Env) -> None:
    backends = await env.three()
    proxy = await env.proxy(make_spec(backends, "sticky", sticky_cookie="GSLB"))
    first = await get(proxy.port)
    cookie = first.header("Set-Cookie")
    assert cookie is not None and cookie.startswith(f"GSLB={backend_of(first.body)};")
    name = backend_of(first.body)
    for _ in range(10):
        reply = await get(proxy.port, Cookie=f"other=1; GSLB={name}")
        assert backend_of(reply.body) == name
        assert reply.header("Set-Cookie") is None  # already right: no new cookie
    # Unknown backend named: moved, new cookie.
    reply = await get(proxy.port, Cookie="GSLB=nosuch")
    assert reply.header("Set-Cookie") is not None
    # Its backend drained: moved, and told where it is now.
    proxy.set_backend_drained(name, True)
    moved = await get(proxy.port, Cookie=f"GSLB={name}")
    new = backend_of(moved.body)
    assert new != name
    assert (moved.header("Set-Cookie") or "").startswith(f"GSLB={new};")
    # Without cookies, sticky spreads new clients over the available backends.
    fresh = Counter([backend_of((await get(proxy.port)).body) for _ in range(20)])
    assert name not in fresh and len(fresh) == 2
