"""The scheduler with a real Prober against real HTTP servers on 127.0.0.2 / 127.0.0.3.

Intervals are short (0.05 s) and every wait is event-driven through Scheduler.wait_for.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace

import pytest
from aiohttp import web

from gslb.health import INITIAL, CheckSpec, Health, Prober, ProbeResult, Scheduler, Target
from gslb.health.scheduler import next_due

FAST = CheckSpec(kind="http", path="/health", interval=0.05, timeout=1.0, rise=2, fall=3)
WAIT = 5.0  # generous upper bound for an event that normally comes within a few intervals


@dataclass
class Server:
    """An HTTP server on one loopback address whose /health answers `status` after `delay`."""

    host: str
    status: int = 200
    delay: float = 0.0
    port: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    async def handle(self, _request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)  # a slow backend, not a wait in the test
            return web.Response(status=self.status)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Server, Server]]:
    runners = []
    made = []
    for host in ("127.0.0.2", "127.0.0.3"):
        server = Server(host)
        app = web.Application()
        app.router.add_get("/health", server.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind((host, 0))
        server.port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        runners.append(runner)
        made.append(server)
    yield made[0], made[1]
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def prober() -> AsyncIterator[Prober]:
    async with Prober() as p:
        yield p


class Recorder:
    """Collects on_result and on_change calls, in order, as ("result"|"change", key, ok/up)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, bool]] = []
        self.changes: list[tuple[str, Health]] = []
        self._wanted: list[tuple[str, int, int, asyncio.Future[None]]] = []

    def on_result(self, key: str, result: ProbeResult) -> None:
        self.events.append(("result", key, result.ok))
        for k, since, n, future in self._wanted:
            if k == key and not future.done() and len(self.results(k, since)) >= n:
                future.set_result(None)

    async def wait_results(self, key: str, since: int, n: int) -> None:
        """Until `key` has had `n` results after event number `since`."""
        future = asyncio.get_running_loop().create_future()
        self._wanted.append((key, since, n, future))
        await asyncio.wait_for(future, WAIT)

    def on_change(self, key: str, health: Health) -> None:
        self.events.append(("change", key, health.up))
        self.changes.append((key, health))

    def results(self, key: str, since: int = 0) -> list[bool]:
        return [ok for kind, k, ok in self.events[since:] if kind == "result" and k == key]

    def results_before_change(self, key: str, up: bool) -> list[bool]:
        """The results of `key` before its latest change to `up`, oldest first."""
        mine = [(kind, ok) for kind, k, ok in self.events if k == key]
        last = max(i for i, (kind, ok) in enumerate(mine) if kind == "change" and ok == up)
        return [ok for kind, ok in mine[:last] if kind == "result"]


def target(key: str, server: Server, spec: CheckSpec = FAST) -> Target:
    return Target(key, spec, server.host, server.port)


Predicate = Callable[[Mapping[str, Health]], bool]


def is_up(key: str) -> Predicate:
    return lambda h: key in h and h[key].confirmed and h[key].up


def is_down(key: str) -> Predicate:
    return lambda h: key in h and h[key].confirmed and not h[key].up


async def test_goes_down_after_fall_failures_and_back_after_rise_successes(
    servers: tuple[Server, Server], prober: Prober
) -> None:
    server, _ = servers
    rec = Recorder()
    sched = Scheduler(prober, rec.on_change, on_result=rec.on_result, rng=random.Random(1))
    sched.set_targets([target("a", server)])
    await sched.start()
    try:
        assert await sched.wait_for(is_up("a"), WAIT)
        assert rec.changes[0][1].confirmed and rec.changes[0][1].up
        assert rec.results_before_change("a", up=True) == [True]  # the first result decided

        server.status = 503
        assert await sched.wait_for(is_down("a"), WAIT)
        # Exactly `fall` failures in a row, after successes, made it go down.
        assert rec.results_before_change("a", up=False)[-4:] == [True, False, False, False]
        assert sched.health()["a"].last_detail == "HTTP 503"

        server.status = 200
        assert await sched.wait_for(is_up("a"), WAIT)
        assert rec.results_before_change("a", up=True)[-3:] == [False, True, True]
        assert [h.up for _, h in rec.changes] == [True, False, True]
    finally:
        await sched.stop()


async def test_first_failure_decides_at_once_and_clock_stamps_it(
    servers: tuple[Server, Server], prober: Prober
) -> None:
    _, server = servers
    server.status = 503
    rec = Recorder()
    sched = Scheduler(prober, rec.on_change, on_result=rec.on_result, clock=lambda: 42.0)
    sched.set_targets([target("b", server)])
    assert sched.health() == {"b": INITIAL}
    await sched.start()
    try:
        assert await sched.wait_for(is_down("b"), WAIT)
        assert rec.results_before_change("b", up=False) == [False]
        assert sched.health()["b"].changed_at == 42.0
    finally:
        await sched.stop()


async def test_set_targets_keeps_unchanged_state_and_drops_removed(
    servers: tuple[Server, Server], prober: Prober
) -> None:
    up_server, down_server = servers
    down_server.status = 503
    rec = Recorder()
    sched = Scheduler(prober, rec.on_change, on_result=rec.on_result)
    sched.set_targets([target("a", up_server), target("b", down_server)])
    await sched.start()
    try:
        assert await sched.wait_for(lambda h: is_up("a")(h) and is_down("b")(h), WAIT)
        a_before = sched.health()["a"]

        mark = len(rec.events)
        sched.set_targets([target("a", up_server), target("c", down_server)])  # equal, new objects
        now = sched.health()
        assert set(now) == {"a", "c"}
        assert now["a"] is a_before
        assert now["c"] == INITIAL

        assert await sched.wait_for(is_down("c"), WAIT)
        await rec.wait_results("a", mark, len(rec.results("a", mark)) + 3)
        assert rec.results("b", since=mark) == []  # its checks stopped with it
        assert "b" not in sched.health()

        # A changed spec under the same key starts over.
        sched.set_targets([target("a", up_server, replace(FAST, fall=5)), target("c", down_server)])
        assert sched.health()["a"] == INITIAL
        assert sched.health()["c"].confirmed
        assert await sched.wait_for(is_up("a"), WAIT)
    finally:
        await sched.stop()


class Constant(random.Random):
    """An RNG that always says `value`: puts every random offset at a known place."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


async def test_first_probe_comes_within_a_second_even_on_a_long_interval(
    servers: tuple[Server, Server], prober: Prober
) -> None:
    server, _ = servers
    rec = Recorder()
    sched = Scheduler(prober, rec.on_change, on_result=rec.on_result, rng=Constant(0.5))
    sched.set_targets([target("slow", server, replace(FAST, interval=60.0))])
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sched.start()
    try:
        assert await sched.wait_for(is_up("slow"), WAIT)
        assert 0.45 <= loop.time() - started < 1.5  # 0.5 of min(60 s, 1 s), not of 60 s
        assert rec.results("slow") == [True]
    finally:
        await sched.stop()


async def test_concurrent_probes_are_bounded(
    servers: tuple[Server, Server], prober: Prober
) -> None:
    slow, _ = servers
    slow.delay = 0.1
    sched = Scheduler(prober, lambda _k, _h: None, max_concurrency=3)
    keys = [f"t{i}" for i in range(12)]
    sched.set_targets(target(k, slow) for k in keys)
    await sched.start()
    try:
        assert await sched.wait_for(lambda h: all(h[k].confirmed for k in keys), WAIT)
    finally:
        await sched.stop()
    assert slow.max_in_flight == 3


async def test_failing_callbacks_do_not_stop_the_checks(
    servers: tuple[Server, Server], prober: Prober
) -> None:
    server, _ = servers

    def broken(_key: str, _value: object) -> None:
        raise RuntimeError("callback bug")

    sched = Scheduler(prober, broken, on_result=broken)
    sched.set_targets([target("a", server, replace(FAST, fall=1))])
    await sched.start()
    try:
        assert await sched.wait_for(is_up("a"), WAIT)
        server.status = 500
        assert await sched.wait_for(is_down("a"), WAIT)
    finally:
        await sched.stop()


async def test_stop_ends_every_check_task_and_keeps_the_state(
    servers: tuple[Server, Server], prober: Prober
) -> None:
    server, _ = servers
    sched = Scheduler(prober, lambda _k, _h: None)
    sched.set_targets([target("a", server), target("b", server)])
    await sched.start()
    assert await sched.wait_for(lambda h: all(x.confirmed for x in h.values()), WAIT)
    await sched.stop()
    names = [t.get_name() for t in asyncio.all_tasks()]
    assert not [n for n in names if n.startswith("health-check")]
    assert sched.health()["a"].up


async def test_wait_for_times_out_and_health_is_a_stable_snapshot(prober: Prober) -> None:
    sched = Scheduler(prober, lambda _k, _h: None)
    spec = CheckSpec(interval=60.0)
    sched.set_targets([Target("x", spec, "127.0.0.2", 9)])
    first = sched.health()
    assert sched.health() is first  # nothing changed: the same cheap object
    assert await sched.wait_for(lambda h: False, 0.05) is False
    assert await sched.wait_for(lambda h: "x" in h, 0.05) is True
    with pytest.raises(TypeError):
        first["y"] = INITIAL  # type: ignore[index]
    with pytest.raises(ValueError, match="duplicate"):
        sched.set_targets([Target("x", spec, "127.0.0.2"), Target("x", spec, "127.0.0.3")])
    assert sched.health() is first  # a refused set_targets changed nothing


@pytest.mark.parametrize(
    ("after", "anchor", "interval", "expected"),
    [
        (0.0, 0.0, 10.0, 10.0),  # strictly after
        (0.1, 0.0, 10.0, 10.0),
        (25.0, 3.0, 10.0, 33.0),
        (2.0, 3.0, 10.0, 3.0),  # the anchor itself when it is still ahead
        (-8.0, 3.0, 10.0, -7.0),
    ],
)
def test_next_due(after: float, anchor: float, interval: float, expected: float) -> None:
    assert next_due(after, anchor, interval) == pytest.approx(expected)
