"""`--workers N`: worker processes on one port see every published view; a dead one returns."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.message
import pytest

from gslb.config import load_config
from gslb.dns.workers import WorkerPool, WorkerSpec, dumps, loads
from gslb.model import HostPort
from gslb.plan import compile_plan
from gslb.state import State, View
from tests.conftest import write_config

ZONE = """
zone: gslb.example.com
soa: {mname: ns1.gslb.example.com, rname: hostmaster.example.com}
ns: [ns1.gslb.example.com]
records:
  ns1: {A: [192.0.2.53]}
services:
  www: {ttl: 30, policy: failover, select: first, answers: 1, regions: [one, two]}
"""
REGION = """
region: {name}
health: {{type: http, path: /health, port: 80}}
services:
  www.gslb.example.com: [{address}]
"""


@pytest.fixture
def view(tmp_path: Path) -> View:
    write_config(
        tmp_path,
        {
            "gslb.example.com.yaml": ZONE,
            "regions/one.yaml": REGION.format(name="one", address="192.0.2.1"),
            "regions/two.yaml": REGION.format(name="two", address="192.0.2.2"),
        },
    )
    return View(compile_plan(load_config(str(tmp_path))), State())


@pytest.fixture
async def pool(view: View) -> AsyncIterator[WorkerPool]:
    spec = WorkerSpec(view, (HostPort("127.0.0.1", 0),), None)
    workers = WorkerPool(spec, 2, restart_delay=0.0)
    await workers.start()
    yield workers
    await workers.stop()


async def www(port: int) -> list[str]:
    query = dns.message.make_query("www.gslb.example.com", "A")
    reply = await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=2)
    return [rd.to_text() for rrset in reply.answer for rd in rrset]


async def answers_become(port: int, expected: list[str]) -> None:
    """Every worker answers `expected` (asked many times: the kernel spreads the queries)."""
    deadline = time.monotonic() + 10
    while True:
        seen = [await www(port) for _ in range(40)]
        if all(s == expected for s in seen):
            return
        assert time.monotonic() < deadline, seen
        await asyncio.sleep(0.05)


def test_views_survive_the_pipe(view: View) -> None:
    state = view.state.with_admin(view.state.admin.with_region("one", "disabled"))
    back = loads(dumps(View(view.plan, state)))
    assert back.state == state
    assert back.plan.services.keys() == view.plan.services.keys()


async def test_workers_answer_and_follow_published_state(pool: WorkerPool, view: View) -> None:
    port = pool.bound[0].port
    assert port != 0 and len(set(pool.pids())) == 2
    await answers_become(port, ["192.0.2.1"])
    down = view.state.with_health("one/192.0.2.1", up=False)
    pool.publish(View(view.plan, down))
    await answers_become(port, ["192.0.2.2"])
    pool.publish(View(view.plan, down.with_health("one/192.0.2.1", up=True)))
    await answers_become(port, ["192.0.2.1"])


async def test_a_dead_worker_is_started_again_with_the_current_view(
    pool: WorkerPool, view: View
) -> None:
    port = pool.bound[0].port
    pool.publish(View(view.plan, view.state.with_health("one/192.0.2.1", up=False)))
    victim = pool.pids()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while pool.restarts < 1 or victim in pool.pids() or len(pool.pids()) < 2:
        assert time.monotonic() < deadline, "the worker was not started again"
        await asyncio.sleep(0.05)
    await answers_become(port, ["192.0.2.2"])  # the new worker got the published state


def test_frames_come_out_whole_however_the_stream_is_cut() -> None:
    from gslb.dns.channel import Frames, frame

    messages = [b"", b"x", bytes(range(256)) * 3000, b"last"]
    stream = b"".join(frame(m) for m in messages)
    for cut in (1, 7, 8, 9, 4096, 200_000):
        frames = Frames()
        out: list[bytes] = []
        for at in range(0, len(stream), cut):
            out += frames.feed(stream[at : at + cut])
        assert out == messages
