"""`--workers N`: DNS answered by N processes sharing the listen ports (SO_REUSEPORT).

One process (the runtime's) keeps doing everything else: health checks, the admin API,
reloads, persistence. It owns the one true `View` and publishes every new one to the
workers, which answer from it; the kernel spreads queries over the workers' sockets.

    pool = WorkerPool(WorkerSpec(view, listen, geo_path, udp_cap, tcp_idle_timeout), count=2)
    bound = await pool.start()     # the bound addresses, as DnsServer.start() returns them
    pool.publish(new_view)         # after every change of plan or state; cheap when only
                                   # the state changed (the plan is sent once per generation)
    await pool.stop()

Protocol over one pipe per worker (a multiprocessing Pipe, framed by gslb.dns.channel so
that a message of any size arrives whole; pickled values; the frozen maps inside plan and
state travel as dicts and come back as read-only views):
parent → worker: ("plan", Plan), ("state", State), ("stop",); worker → parent:
("ready", [Bound, ...]), then ("stats", {...}) every second. A worker that dies is
started again with the current view (after `restart_delay`, so a worker that cannot start
does not spin); its port is the one the first worker bound, so port 0 works too.

Each worker has its own answer cache and GeoIP cache and its own event loop (gslb.dns.loop),
and sends its DNS counters to the parent every second, ("stats", DnsStats data); the parent
adds them up for /metrics and the status page, keeping those of workers that died.
"""

from __future__ import annotations

import asyncio
import copyreg
import io
import logging
import multiprocessing
import os
import pickle
import signal
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import MappingProxyType
from typing import Any

from gslb.dns import loop
from gslb.dns.answers import AnswerCache
from gslb.dns.channel import Channel
from gslb.dns.querylog import open_query_log
from gslb.dns.responder import Responder
from gslb.dns.rrl import rate_limit_filter
from gslb.dns.server import Bound, DnsServer
from gslb.dns.server_options import dns_handlers
from gslb.geo import open_geo
from gslb.metrics import DnsStats
from gslb.model import HostPort, QueryLogSettings, RateLimitSettings, TcpSettings
from gslb.state import View

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
STATS_EVERY = 1.0  # seconds between a worker's counter reports to the parent
STOP_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker needs to start answering."""

    view: View
    listen: tuple[HostPort, ...]
    geo_path: str | None
    udp_cap: int = 1232
    tcp_idle_timeout: float = 10.0
    tcp: TcpSettings = field(default_factory=TcpSettings)
    rate_limit: RateLimitSettings | None = None
    cookie_secrets: tuple[bytes, ...] | None = None  # the parent's, so every worker agrees
    identity: str | None = None
    query_log: QueryLogSettings | None = None  # each worker writes PATH.PID
    cache_entries: int = 100_000
    cache_memory: int = 256_000_000


# --- values over the pipe ---------------------------------------------------------------


def read_only(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    """Rebuilds a pickled read-only map (the class itself cannot be pickled by name)."""
    return MappingProxyType(items)


def _reduce_mapping_proxy(proxy: MappingProxyType[Any, Any]) -> tuple[Any, tuple[Any, ...]]:
    return read_only, (dict(proxy),)


def dumps(value: object) -> bytes:
    """Pickle with the read-only maps of model/plan/state (MappingProxyType) as dicts."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = copyreg.dispatch_table.copy()
    pickler.dispatch_table[MappingProxyType] = _reduce_mapping_proxy
    pickler.dump(value)
    return buffer.getvalue()


def loads(data: bytes) -> Any:
    return pickle.loads(data)


# --- the worker process -----------------------------------------------------------------


def worker_main(spec_bytes: bytes, conn: Connection) -> None:
    """Entry point of a worker process (spawned: nothing inherited but the pipe)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    spec: WorkerSpec = loads(spec_bytes)
    loop.run(_serve(spec, conn))


async def _serve(spec: WorkerSpec, conn: Connection) -> None:
    current = [spec.view]
    geo = open_geo(spec.geo_path)
    stats = DnsStats()
    responder = Responder(
        lambda: current[0],
        None if spec.geo_path is None else geo,
        udp_cap=spec.udp_cap,
        observer=stats,
        cache=AnswerCache(
            max_answers=spec.cache_entries,
            max_clients=spec.cache_entries,
            max_bytes=spec.cache_memory,
        ),
        identity=spec.identity,
    )
    handle, cached, limit = dns_handlers(
        responder.handle_wire,
        responder.answer_cached,
        rate_limit_filter(spec.rate_limit, stats),
        udp_cap=spec.udp_cap,
        cookie_secrets=spec.cookie_secrets,
        identity=spec.identity,
    )
    query_log = None
    if spec.query_log is not None:
        query_log = open_query_log(
            spec.query_log.path, spec.query_log.sample, spec.identity, f".{os.getpid()}"
        )
        if query_log is not None:
            handle, cached = query_log.wrap(handle, cached)
    server = DnsServer(
        handle,
        spec.listen,
        cached=cached,
        tcp_idle_timeout=spec.tcp_idle_timeout,
        tcp=spec.tcp,
        limit=limit,
        reuse_port=True,
    )
    bound = await server.start()
    stopped = asyncio.Event()

    def on_message(data: bytes) -> None:
        message = loads(data)
        kind = message[0]
        if kind == "plan":
            current[0] = View(message[1], current[0].state)
        elif kind == "state":
            current[0] = View(current[0].plan, message[1])
        elif kind == "stop":
            stopped.set()

    # The parent gone (its end closed) is the end of the reason to answer.
    channel = Channel(conn.fileno(), on_message, stopped.set)
    channel.send(dumps(("ready", bound)))

    async def report() -> None:
        """This worker's counters to the parent, for its /metrics and status page."""
        while not channel.closed:
            await asyncio.sleep(STATS_EVERY)
            channel.send(dumps(("stats", stats.query_snapshot())))

    reporter = asyncio.get_running_loop().create_task(report())
    try:
        await stopped.wait()
    finally:
        reporter.cancel()
        channel.close()
        await server.close()
        if query_log is not None:
            query_log.close()
        geo.close()


# --- the parent side --------------------------------------------------------------------


class _Worker:
    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.channel: Channel | None = None  # set once the loop watches the pipe
        self.snapshot: dict[str, Any] | None = None  # its latest counters

    def send(self, message: bytes) -> None:
        # A worker that died gets the current view when the supervisor starts it again.
        if self.channel is not None:
            self.channel.send(message)

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        self.conn.close()


class WorkerPool:
    """N worker processes answering DNS from the view this process publishes."""

    def __init__(self, spec: WorkerSpec, count: int, *, restart_delay: float = 1.0) -> None:
        if count < 1:
            raise ValueError("at least one worker")
        self._spec = spec
        self._count = count
        self._restart_delay = restart_delay
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker | None] = [None] * count
        self._view = spec.view
        self._listen: tuple[HostPort, ...] = spec.listen
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self.bound: list[Bound] = []
        self.restarts = 0
        self._retired: list[dict[str, Any]] = []  # last counters of workers that died

    async def start(self) -> list[Bound]:
        # The first worker binds what was asked (port 0 included); the others, and any
        # restarted worker, bind the ports it got, so SO_REUSEPORT groups them.
        self.bound = await self._start_worker(0)
        self._listen = tuple(HostPort(b.host, b.port) for b in self.bound)
        await asyncio.gather(*(self._start_worker(i) for i in range(1, self._count)))
        self._supervisor = asyncio.create_task(self._supervise())
        return self.bound

    async def _start_worker(self, index: int) -> list[Bound]:
        parent_end, child_end = self._context.Pipe()
        spec = replace(self._spec, view=self._view, listen=self._listen)
        process = self._context.Process(
            target=worker_main, args=(dumps(spec), child_end), name=f"gslb-dns-{index}"
        )
        process.start()
        child_end.close()
        worker = _Worker(process, parent_end)
        ready: asyncio.Future[list[Bound]] = asyncio.get_running_loop().create_future()

        def on_message(data: bytes) -> None:
            message = loads(data)
            if message[0] == "ready" and not ready.done():
                ready.set_result(message[1])
            elif message[0] == "stats":
                worker.snapshot = message[1]

        def on_close() -> None:
            if not ready.done():
                ready.set_exception(EOFError("the worker closed its pipe"))

        worker.channel = Channel(parent_end.fileno(), on_message, on_close)
        try:
            bound = await asyncio.wait_for(ready, START_TIMEOUT)
        except (TimeoutError, EOFError, OSError) as exc:
            process.kill()
            worker.close()
            raise RuntimeError(f"DNS worker {index} did not start: {exc!r}") from exc
        self._workers[index] = worker
        return bound

    def snapshots(self) -> list[dict[str, Any]]:
        """The DNS counters of every worker, those that died included (`DnsStats` data)."""
        live = [w.snapshot for w in self._workers if w is not None and w.snapshot is not None]
        return self._retired + live

    def queries_per_worker(self) -> list[int]:
        """Queries each live worker has reported answering since it started."""
        return [
            sum(row[-1] for row in w.snapshot["queries"]) if w.snapshot else 0
            for w in self._workers
            if w is not None
        ]

    def publish(self, view: View) -> None:
        """Send what changed since the last published view to every worker."""
        messages: list[bytes] = []
        if view.plan is not self._view.plan:
            messages.append(dumps(("plan", view.plan)))
        if view.state is not self._view.state:
            messages.append(dumps(("state", view.state)))
        self._view = view
        for worker in self._workers:
            if worker is None:
                continue
            for message in messages:
                worker.send(message)

    async def _supervise(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.2)
            for index, worker in enumerate(self._workers):
                if worker is None or self._stopping:
                    continue
                if worker.process.is_alive():
                    if worker.channel is not None and worker.channel.closed:
                        # It stopped reading (its outbox overflowed) or closed its end:
                        # it would answer from a stale view. Start it afresh.
                        log.warning("DNS worker %d stopped taking updates; restarting it", index)
                        worker.process.kill()
                    continue
                log.warning(
                    "DNS worker %d exited (code %s); starting it again",
                    index,
                    worker.process.exitcode,
                )
                worker.close()
                if worker.snapshot is not None:
                    self._retired.append(worker.snapshot)
                self._workers[index] = None
                await asyncio.sleep(self._restart_delay)
                try:
                    await self._start_worker(index)
                    self.restarts += 1
                except RuntimeError:
                    log.exception("DNS worker %d failed to start; trying again", index)

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w is not None and w.process.pid]

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
        for worker in self._workers:
            if worker is not None:
                worker.send(dumps(("stop",)))
        for worker in self._workers:
            if worker is None:
                continue
            await asyncio.to_thread(worker.process.join, STOP_TIMEOUT)
            if worker.process.is_alive():
                worker.process.kill()
                await asyncio.to_thread(worker.process.join)
            worker.close()
        self._workers = [None] * self._count
