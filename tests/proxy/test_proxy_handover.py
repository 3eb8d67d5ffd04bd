"""A restart that loses nothing: a new proxy listens beside the old one (SO_REUSEPORT)
before the old one drains, and connections the kernel had queued for the old one when
its listener closed are served, not reset."""

from __future__ import annotations

import asyncio

from proxyhelpers import Env, get, make_spec, read_reply

from gslb.model import HostPort


async def test_connections_queued_when_the_drain_starts_are_served(env: Env) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b], max_connections=2, drain_timeout=5.0))
    slow = []
    for _ in range(2):  # the cap: each holds half a request head
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n")
        slow.append((reader, writer))
    async with asyncio.timeout(5):
        while proxy.accepting:
            await asyncio.sleep(0.01)
    # A third connection waits in the kernel's backlog, its request written whole.
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    await writer.drain()

    drained = asyncio.ensure_future(proxy.drain())
    reply = await asyncio.wait_for(read_reply(reader), 5)
    assert (reply.status, reply.body) == (200, b"solo")  # not reset with the listener
    assert (reply.header("Connection") or "").lower() == "close"
    for slow_reader, slow_writer in slow:  # the two in flight finish too
        slow_writer.write(b"\r\n")
        assert (await asyncio.wait_for(read_reply(slow_reader), 5)).status == 200
    assert await asyncio.wait_for(drained, 10)  # every connection closed cleanly
    writer.close()


async def test_a_new_proxy_listens_beside_the_old_one_and_takes_over(env: Env) -> None:
    b = await env.backend("solo")
    old = await env.proxy(make_spec([b]))
    new = await env.proxy(make_spec([b], listen=HostPort("127.0.0.1", old.port)))
    assert new.port == old.port  # the second bind did not fail: SO_REUSEPORT
    assert await asyncio.wait_for(old.drain(), 10)
    for _ in range(20):  # only the new one listens now: every connection reaches it
        assert (await get(old.port)).status == 200
    assert sum(new.stats.requests.values()) == 20
