"""Passive marks are no client's lever: request-provoked errors count once per client, and
panic mode ignores passive marks when too few backends would be left."""

from __future__ import annotations

import asyncio
from collections import Counter

from proxyhelpers import Env, get, make_spec

ATTACKER = "127.0.0.9"
VICTIM = "127.0.0.10"


async def test_one_client_provoking_resets_cannot_take_backends_out(env: Env) -> None:
    backends = await env.three()
    # Panic mode off: the per-client rule alone must hold.
    spec = make_spec(backends, fail_threshold=3, cooldown=60.0, panic_threshold=0.0)
    proxy = await env.proxy(spec)
    # The attack: requests that make the backend reset the connection (each GET is retried
    # once on another backend, so every request fails on two backends).
    attack = [await get(proxy.port, "/reset", source=ATTACKER) for _ in range(30)]
    assert all(r.status == 502 for r in attack)
    assert sum(b.hits for b in backends) >= 30
    status = proxy.status()
    assert not any(b["passive_out"] for b in status["backends"])
    # Another client, and the attacker's own plain GETs, are all served, by every backend.
    replies = await asyncio.gather(*(get(proxy.port, source=VICTIM) for _ in range(60)))
    assert [r.status for r in replies] == [200] * 60
    assert set(Counter(r.body for r in replies)) == {b"b0", b"b1", b"b2"}
    assert (await get(proxy.port, source=ATTACKER)).status == 200


async def test_resets_from_distinct_clients_still_take_a_backend_out(env: Env) -> None:
    backends = await env.three()
    proxy = await env.proxy(make_spec(backends, fail_threshold=2, cooldown=60.0))
    for i in range(4):
        await get(proxy.port, "/reset", source=f"127.0.2.{i + 1}")
    out = [b["name"] for b in proxy.status()["backends"] if b["passive_out"]]
    assert out  # two distinct clients failing in a row on a backend take it out


async def test_panic_mode_serves_instead_of_502(env: Env) -> None:
    backends = [await env.backend(f"b{i}", f"127.0.0.{i + 1}") for i in range(2)]
    spec = make_spec(backends, fail_threshold=1, cooldown=60.0, panic_threshold=0.5)
    proxy = await env.proxy(spec)
    for b in backends:
        b.status = 500
    first = [await get(proxy.port, source=f"127.0.3.{i + 1}") for i in range(4)]
    assert [r.status for r in first] == [500] * 4
    status = proxy.status()
    # Both would be out: below 50% usable, the marks are ignored.
    assert all(b["passive_out"] for b in status["backends"])
    assert status["panic"] is True
    assert all(b["available"] for b in status["backends"])
    for b in backends:
        b.status = 200
    replies = [await get(proxy.port, source=VICTIM) for _ in range(4)]
    assert [r.status for r in replies] == [200] * 4  # not 502 for the rest of the cool-down
    assert proxy.status()["panic"] is False


async def test_without_panic_mode_all_marked_means_502(env: Env) -> None:
    backends = [await env.backend(f"b{i}", f"127.0.0.{i + 1}") for i in range(2)]
    spec = make_spec(backends, fail_threshold=1, cooldown=60.0, panic_threshold=0.0)
    proxy = await env.proxy(spec)
    for b in backends:
        b.status = 500
    for i in range(4):
        await get(proxy.port, source=f"127.0.3.{i + 1}")
    for b in backends:
        b.status = 200
    assert (await get(proxy.port, source=VICTIM)).status == 502
