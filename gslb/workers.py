"""`gslb serve --workers N`: N DNS processes on the same ports, one brain.

The parent process keeps everything that has state to agree on: the health
checks, the admin API, persistence, reloads (it stays the single writer). Each
worker only answers DNS, on the shared addresses with SO_REUSEPORT so the
kernel spreads queries over them. Over one pipe per worker:

  parent → worker  ("state", {...})     the health + admin State, on every change
                   ("reload", gen)      re-read the config directory (the parent validated it)
  worker → parent  ("ready", [[host, port], ...])
                   ("stats", {...})     its DNS counters, every second, for /metrics

A worker that dies is started again with the current state; the counters it
had reported are kept, so totals never go back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from gslb.dns.server import Bound
from gslb.metrics import DnsStats
from gslb.model import HostPort, frozen_map
from gslb.state import AdminState, State

log = logging.getLogger(__name__)
STATS_EVERY = 1.0  # seconds between a worker's counter reports
READY_TIMEOUT = 30.0


def encode_state(state: State) -> dict[str, Any]:
    return {
        "version": state.version,
        "down": sorted(state.down),
        "regions": dict(state.admin.regions),
        "disabled": sorted(state.admin.disabled_endpoints),
    }


def decode_state(data: dict[str, Any]) -> State:
    admin = AdminState(frozen_map(data["regions"]), frozenset(data["disabled"]))
    return State(int(data["version"]), frozenset(data["down"]), admin)


def concrete_ports(listen: Sequence[HostPort]) -> list[HostPort]:
    """Port 0 replaced by a port free for UDP and TCP, so every worker binds the same one."""
    out = []
    for hp in listen:
        if hp.port != 0:
            out.append(hp)
            continue
        family = socket.AF_INET6 if ":" in hp.host else socket.AF_INET
        for _ in range(20):
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                udp.bind((hp.host, 0))
                port = int(udp.getsockname()[1])
                with socket.socket(family, socket.SOCK_STREAM) as tcp:
                    try:
                        tcp.bind((hp.host, port))
                    except OSError:
                        continue
            out.append(HostPort(hp.host, port))
            break
        else:
            raise OSError(f"no free port on {hp.host} for both UDP and TCP")
    return out


# -- the worker process -------------------------------------------------------------------


def worker_main(config_dir: str, listen: list[tuple[str, int]], conn: Connection) -> None:
    """Entry point of a worker process (spawned, so it imports everything afresh)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        import uvloop
    except ImportError:
        asyncio.run(_worker(config_dir, listen, conn))
    else:
        uvloop.run(_worker(config_dir, listen, conn))


async def _worker(config_dir: str, listen: list[tuple[str, int]], conn: Connection) -> None:
    from gslb.config import load_config
    from gslb.dns.responder import Responder, View
    from gslb.dns.server import DnsServer
    from gslb.geo import NoGeo, open_geo
    from gslb.plan import compile_plan

    config = load_config(config_dir)
    geo = open_geo(config.settings.geoip_database)
    stats = DnsStats()
    view = View(compile_plan(config), State())

    def current() -> View:
        return view

    responder = Responder(
        current,
        None if isinstance(geo, NoGeo) else geo,
        udp_cap=config.settings.max_udp_size,
        observer=stats,
    )
    server = DnsServer(
        responder.handle_wire,
        [HostPort(h, p) for h, p in listen],
        tcp_idle_timeout=config.settings.tcp_idle_timeout,
        reuse_port=True,
    )
    bound = await server.start()
    conn.send(("ready", [[b.host, b.port] for b in bound]))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def on_message() -> None:
        nonlocal view
        try:
            while conn.poll():
                kind, payload = conn.recv()
                if kind == "state":
                    view = View(view.plan, decode_state(payload))
                elif kind == "reload":
                    view = View(compile_plan(load_config(config_dir), int(payload)), view.state)
        except (EOFError, OSError):
            stop.set()  # the parent is gone
        except Exception:
            log.exception("worker: message from the parent failed")

    loop.add_reader(conn.fileno(), on_message)

    async def report() -> None:
        while True:
            await asyncio.sleep(STATS_EVERY)
            try:
                conn.send(("stats", stats.query_snapshot()))
            except OSError:
                stop.set()
                return

    reporter = loop.create_task(report())
    await stop.wait()
    reporter.cancel()
    loop.remove_reader(conn.fileno())
    await server.close()
    geo.close()


# -- the parent's side --------------------------------------------------------------------


@dataclass
class _Slot:
    index: int
    process: BaseProcess | None = None
    conn: Connection | None = None
    ready: asyncio.Future[list[Bound]] | None = None
    snapshot: dict[str, Any] | None = None
    retired: list[dict[str, Any]] = field(default_factory=list)  # counters of dead workers


class WorkerPool:
    def __init__(self, config_dir: str, listen: Sequence[HostPort], count: int) -> None:
        self.config_dir = config_dir
        self.listen = concrete_ports(listen)
        self.count = count
        self._context = multiprocessing.get_context("spawn")
        self._slots = [_Slot(i) for i in range(count)]
        self._state: dict[str, Any] | None = None
        self._stopping = False
        self.restarts = 0

    async def start(self, state: State) -> list[Bound]:
        self._state = encode_state(state)
        for slot in self._slots:
            self._spawn(slot)
        bound: list[Bound] = []
        for slot in self._slots:
            assert slot.ready is not None
            bound = await asyncio.wait_for(slot.ready, READY_TIMEOUT)
        return bound

    def _spawn(self, slot: _Slot) -> None:
        loop = asyncio.get_running_loop()
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(
            target=worker_main,
            args=(self.config_dir, [(hp.host, hp.port) for hp in self.listen], child_end),
            name=f"gslb-dns-{slot.index}",
            daemon=True,
        )
        process.start()
        child_end.close()
        slot.process, slot.conn = process, parent_end
        slot.ready = loop.create_future()
        if self._state is not None:
            parent_end.send(("state", self._state))
        loop.add_reader(parent_end.fileno(), self._on_message, slot)
        loop.add_reader(process.sentinel, self._on_exit, slot)

    def _on_message(self, slot: _Slot) -> None:
        conn = slot.conn
        if conn is None:
            return
        try:
            while conn.poll():
                kind, payload = conn.recv()
                if kind == "stats":
                    slot.snapshot = payload
                elif kind == "ready" and slot.ready is not None and not slot.ready.done():
                    slot.ready.set_result([Bound(h, p) for h, p in payload])
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(conn.fileno())

    def _on_exit(self, slot: _Slot) -> None:
        loop = asyncio.get_running_loop()
        process = slot.process
        if process is None:
            return
        loop.remove_reader(process.sentinel)
        if slot.conn is not None:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(slot.conn.fileno())
            slot.conn.close()
        if slot.snapshot is not None:
            slot.retired.append(slot.snapshot)
            slot.snapshot = None
        process.join(0)
        if self._stopping:
            return
        log.error("DNS worker %d exited (code %s); starting it again", slot.index, process.exitcode)
        self.restarts += 1
        self._spawn(slot)

    def _broadcast(self, message: tuple[str, Any]) -> None:
        for slot in self._slots:
            if slot.conn is not None:
                try:
                    slot.conn.send(message)
                except OSError:
                    log.warning("DNS worker %d did not take a message", slot.index)

    def publish_state(self, state: State) -> None:
        self._state = encode_state(state)
        self._broadcast(("state", self._state))

    def publish_reload(self, generation: int, state: State) -> None:
        self._broadcast(("reload", generation))
        self.publish_state(state)

    def snapshots(self) -> list[dict[str, Any]]:
        out = []
        for slot in self._slots:
            out.extend(slot.retired)
            if slot.snapshot is not None:
                out.append(slot.snapshot)
        return out

    def queries_per_worker(self) -> list[int]:
        """Queries each live worker has reported answering (since it started)."""
        return [
            sum(row[-1] for row in slot.snapshot["queries"]) if slot.snapshot else 0
            for slot in self._slots
        ]

    def pids(self) -> list[int]:
        return [s.process.pid for s in self._slots if s.process and s.process.pid]

    async def stop(self) -> None:
        self._stopping = True
        for slot in self._slots:
            if slot.process is not None and slot.process.is_alive():
                slot.process.terminate()
        for slot in self._slots:
            if slot.process is not None:
                await asyncio.to_thread(slot.process.join, 5)
                if slot.process.is_alive():
                    slot.process.kill()
