"""`ProxyServer`: one region's proxy, in-process: traffic port, admin port, health checks.

    server = ProxyServer(spec, token="secret")
    await server.start()            # binds; port 0 works, read server.port / server.admin_port
    server.reload(new_spec)         # SIGHUP: swap backends/method/timeouts, no request dropped
    server.reopen_logs()            # SIGUSR1: the access log file is opened again (logrotate)
    server.tls_port                 # the HTTPS port, when the spec has `tls:` (else 0)
    await server.drain()            # stop accepting, finish in-flight (up to drain_timeout)
    await server.close()

Draining the whole proxy loses no request: the listening socket closes, /health answers 503,
requests in flight are answered, the next answer on each kept-alive connection says
`Connection: close` and the connection closes after it; a connection idle at the time stays
open for `drain_grace` plus a random share of `drain_close_spread` (a request the client had
already written is answered, with `Connection: close`), then is closed. Idle backend
connections close; whatever is still open after `drain_timeout` is cut.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from gslb.health import Health, Prober, Scheduler, Target
from gslb.model import HostPort, ProxySpec, ProxyTlsSpec
from gslb.proxy.accesslog import AccessLog
from gslb.proxy.admin import make_admin_app
from gslb.proxy.backends import BackendState, BackendTable
from gslb.proxy.balancers import make_balancer
from gslb.proxy.exchange import wake
from gslb.proxy.frontend import ClientConnection
from gslb.proxy.listener import Door, Listener, bind
from gslb.proxy.metrics import make_registry
from gslb.proxy.routes import BackendGroup, RouteTable
from gslb.proxy.shared import Shared, Snapshot
from gslb.proxy.stats import ProxyStats
from gslb.proxy.tls import BackendTls, ServerTls, server_tls

log = logging.getLogger(__name__)


class ProxyServer:
    def __init__(
        self,
        spec: ProxySpec,
        *,
        token: str | None = None,
        listen: HostPort | None = None,
        admin: HostPort | None = None,
    ) -> None:
        self._spec = spec
        self._token = token
        self._listen = listen or spec.listen
        self._admin = admin or spec.admin
        self.stats = ProxyStats()
        self._shared: Shared | None = None
        self._server: Listener | None = None
        self._admin_runner: web.AppRunner | None = None
        self._admin_site_port = 0
        self._port = 0
        self._tls_port = 0
        self._tls: ServerTls | None = None  # the certificates new TLS connections get
        self._tls_bound: ProxyTlsSpec | None = None  # the TLS listener as bound
        self._tls_sock: socket.socket | None = None
        self._prober: Prober | None = None
        self._scheduler: Scheduler | None = None
        self._drain_task: asyncio.Task[bool] | None = None
        self.finished = asyncio.Event()  # set once a drain completed
        self.registry: CollectorRegistry = make_registry(self.stats, self._backends)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and serve. Raises OSError (a port taken) or CertificateError (a TLS file
        that became unusable since the config was read)."""
        loop = asyncio.get_running_loop()
        spec = self._spec
        tls = server_tls(spec.tls) if spec.tls is not None else None
        backend_tls = BackendTls(spec.backends)
        shared = Shared(loop, self._snapshot(spec, None), self.stats)
        shared.pool.tls = backend_tls
        self._shared = shared
        logged = spec.access_log
        if logged is not None:
            access_log = AccessLog(logged.path, logged.format, self.stats)
            access_log.start()  # an unwritable path fails the start, like a taken port
            shared.access_log = access_log
        doors = [Door(bind(self._listen), lambda: ClientConnection(shared))]
        if spec.tls is not None and tls is not None:
            try:
                sock = bind(spec.tls.listen)
            except OSError:
                doors[0].sock.close()
                raise
            self._tls = tls
            doors.append(self._tls_door(spec.tls, sock, shared))
        shared.start_sweep()
        listener = Listener(
            loop,
            doors,
            lambda: shared.snapshot.spec.max_connections,
            self._accept_paused,
            self.stats.count_handshake,
        )
        shared.on_closed = listener.closed_one
        self._server = listener
        self._port = int(listener.sockets[0].getsockname()[1])
        if self._admin is not None:
            runner = web.AppRunner(make_admin_app(self, self._token), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, self._admin.host, self._admin.port, reuse_address=True)
            await site.start()
            self._admin_runner = runner
            # aiohttp keeps the bound server here (uvloop's is no asyncio.Server subclass)
            sockets = getattr(site._server, "sockets", None)
            if sockets:
                self._admin_site_port = int(sockets[0].getsockname()[1])
        await self._start_checks()
        admin = f"{self._admin.host}:{self.admin_port}" if self._admin else "off"
        https = f", https on {self.tls_address}" if self._tls is not None else ""
        log.info("proxy listening on %s%s (admin %s)", self.address, https, admin)

    def _certs(self) -> ServerTls:
        assert self._tls is not None
        return self._tls

    def _accept_paused(self) -> None:
        self.stats.accept_paused += 1

    @property
    def accepting(self) -> bool:
        """False while max_connections client connections are open (or once closed)."""
        return self._server is not None and self._server.accepting

    @property
    def access_log(self) -> AccessLog | None:
        return self._shared.access_log if self._shared is not None else None

    def reopen_logs(self) -> None:
        """SIGUSR1: open the access log's path again, after logrotate moved the file."""
        if self.access_log is not None:
            self.access_log.reopen()

    @property
    def port(self) -> int:
        """The bound traffic port (known once started)."""
        return self._port

    @property
    def address(self) -> HostPort:
        return HostPort(self._listen.host, self.port)

    @property
    def tls_port(self) -> int:
        """The bound HTTPS port (0 without `tls:`)."""
        return self._tls_port

    @property
    def tls_address(self) -> HostPort | None:
        bound = self._tls_bound
        return None if bound is None else HostPort(bound.listen.host, self._tls_port)

    @property
    def admin_port(self) -> int:
        return self._admin_site_port

    @property
    def draining(self) -> bool:
        return self._shared is not None and self._shared.draining

    def request_drain(self) -> None:
        """Start draining in the background (SIGTERM, POST /drain); `finished` is set after."""
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self.drain())

    async def drain(self, timeout: float | None = None) -> bool:
        """Stop accepting and let in-flight requests finish; True when all of them did."""
        shared = self._shared
        assert shared is not None
        if timeout is None:
            timeout = shared.snapshot.spec.drain_timeout
        shared.start_drain(timeout)
        if self._server is not None:
            self._server.close()
            await self._server.settled()  # those just accepted are drained like the rest
        for conn in list(shared.connections):
            conn.drain()
        shared.pool.close_idle()
        try:
            async with asyncio.timeout(timeout):
                await shared.wait_all_closed()
            clean = True
        except TimeoutError:
            log.warning("drain timeout: cutting %d connections", len(shared.connections))
            for conn in list(shared.connections):
                conn.abort()
            clean = False
        shared.pool.close_idle()
        self.finished.set()
        return clean

    async def close(self) -> None:
        """Cut everything and release the ports (drain first for a graceful stop)."""
        shared = self._shared
        if self._server is not None:
            self._server.abort()
        if shared is not None:
            shared.draining = True
            shared.stop_sweep()
            for conn in list(shared.connections):
                conn.abort()
            shared.pool.close_idle()
        if self._scheduler is not None:
            await self._scheduler.stop()
            self._scheduler = None
        if self._prober is not None:
            await self._prober.close()
            self._prober = None
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
            self._admin_runner = None
        if self._drain_task is not None and not self._drain_task.done():
            self._drain_task.cancel()
        if shared is not None and shared.access_log is not None:
            access_log, shared.access_log = shared.access_log, None
            await access_log.close()  # the lines queued so far are written first
        self.finished.set()

    # -- config ---------------------------------------------------------------------------------

    def _snapshot(self, spec: ProxySpec, previous: Snapshot | None) -> Snapshot:
        table = BackendTable(
            spec.backends,
            previous.table if previous else None,
            self._health_changed,
            spec.panic_threshold,
        )
        same_set = previous is not None and [
            (b.name, b.weight) for b in previous.spec.backends
        ] == [(b.name, b.weight) for b in spec.backends]
        if previous is not None and same_set and previous.spec.method == spec.method:
            balancer = previous.balancer  # keeps its rotation going
        else:
            names = [b.name for b in spec.backends]
            balancer = make_balancer(spec.method, names, [b.weight for b in spec.backends])
        sticky = spec.sticky_cookie.encode() if spec.method == "sticky" else None
        names = [b.name for b in spec.backends]
        groups = [BackendGroup(table, names, balancer)]
        kept = {g.key: g.balancer for g in previous.groups[1:]} if previous else {}
        weights = {b.name: b.weight for b in spec.backends}
        for route in spec.routes:
            key = (spec.method, route.backends, tuple(weights.get(n, 1) for n in route.backends))
            group_balancer = kept.pop(key, None) or make_balancer(spec.method, *key[1:])
            groups.append(BackendGroup(table, route.backends, group_balancer, key))
        return Snapshot(
            spec, table, balancer, sticky, routes=RouteTable(spec.routes), groups=tuple(groups)
        )

    def reload(self, spec: ProxySpec) -> None:
        """Apply a new proxy block. Requests in flight finish on the snapshot they started
        with; the listen and admin addresses stay as they were bound. `tls:` added, removed
        or moved opens, closes or moves the HTTPS listener; new TLS connections get the new
        certificates, open ones keep theirs. Raises CertificateError (a TLS file became
        unusable since the config was read) or OSError (the new HTTPS address cannot be
        bound), changing nothing."""
        shared = self._shared
        assert shared is not None
        tls = server_tls(spec.tls, self._tls) if spec.tls is not None else None
        backend_tls = BackendTls(spec.backends, shared.pool.tls)
        self._move_tls_listener(spec.tls, shared)
        previous = shared.snapshot
        snap = self._snapshot(spec, previous)
        shared.snapshot = snap
        self._spec = spec
        if tls is not None:  # else kept for the connections a closed listener had queued
            self._tls = tls
        shared.pool.tls = backend_tls
        for gone in snap.table.retired(previous.table):
            shared.pool.close_idle(gone)
        if self._server is not None:
            self._server.recheck()  # max_connections may have been raised
        for state in snap.table.backends:
            wake(state)  # so may a backend's: requests waiting for it take the new slots
        if self._scheduler is not None or spec.health is not None:
            asyncio.get_running_loop().create_task(self._start_checks())
        log.info("proxy reloaded: %d backends, %s", len(spec.backends), spec.method)

    def _move_tls_listener(self, tls: ProxyTlsSpec | None, shared: Shared) -> None:
        """Open, close or move the HTTPS listener as `tls` says. The new address is bound
        before the old one closes (an OSError leaves everything as it was); connections the
        old one let in stay open."""
        bound, listener = self._tls_bound, self._server
        old = bound.listen if bound is not None else None
        new = tls.listen if tls is not None else None
        if old == new or listener is None:
            return
        sock = bind(new) if new is not None else None
        if self._tls_sock is not None:
            listener.remove_door(self._tls_sock)
            log.info("proxy: https listener on %s closed", self.tls_address)
            self._tls_bound, self._tls_sock, self._tls_port = None, None, 0
        if tls is not None and sock is not None:
            listener.add_door(self._tls_door(tls, sock, shared))
            log.info("proxy: https listener on %s opened", self.tls_address)

    def _tls_door(self, tls: ProxyTlsSpec, sock: socket.socket, shared: Shared) -> Door:
        """The HTTPS listener's door on the bound `sock`, recorded as the one serving `tls`."""
        self._tls_bound, self._tls_sock = tls, sock
        self._tls_port = int(sock.getsockname()[1])
        return Door(sock, lambda: ClientConnection(shared, b"https"), self._certs)

    def _backends(self) -> tuple[BackendState, ...]:
        if self._shared is None:
            return ()
        return tuple(self._shared.snapshot.table.backends)

    # -- active health checks -----------------------------------------------------------------

    async def _start_checks(self) -> None:
        spec = self._spec
        if spec.health is None:
            if self._scheduler is not None:
                self._scheduler.set_targets([])
            assert self._shared is not None
            for state in self._shared.snapshot.table.backends:
                self._shared.snapshot.table.set_healthy(state, True, "")
            return
        if self._prober is None:
            self._prober = Prober()
            await self._prober.open()
        if self._scheduler is None:
            self._scheduler = Scheduler(self._prober, self._on_check)
            await self._scheduler.start()
        check = spec.health
        # An https:// backend is checked over TLS, verified as its requests are.
        https = dataclasses.replace(check, kind="https") if check.kind == "http" else check
        tls = self._shared.pool.tls if self._shared is not None else BackendTls(())
        self._scheduler.set_targets(
            Target(
                b.name,
                https if b.https else check,
                b.host,
                check.port or b.port,
                tls.context(b),
            )
            for b in spec.backends
        )
        # Targets kept across a reload keep their Health: carry it into the new table.
        for name, health in self._scheduler.health().items():
            self._on_check(name, health)

    def _on_check(self, name: str, health: Health) -> None:
        if self._shared is None:
            return
        table = self._shared.snapshot.table
        state = table.get(name)
        if state is not None:
            table.set_healthy(state, health.up, health.last_detail)

    def _health_changed(self, state: BackendState, up: bool) -> None:
        self.stats.count_health_change(state.name, up)
        # A recovery is news, not a problem: INFO; a failure stays a WARNING.
        log.log(
            logging.INFO if up else logging.WARNING,
            "backend %s is %s",
            state.name,
            "up" if up else "down",
        )

    # -- admin ----------------------------------------------------------------------------------

    def healthy(self) -> tuple[bool, str]:
        shared = self._shared
        if shared is None:
            return False, "not started"
        if shared.draining:
            return False, "draining"
        if not shared.snapshot.table.any_available():
            return False, "no backend can take requests"
        return True, "ok"

    def set_backend_drained(self, name: str, drained: bool) -> bool:
        shared = self._shared
        assert shared is not None
        table = shared.snapshot.table
        state = table.get(name)
        if state is None:
            return False
        table.set_drained(state, drained)
        if drained:
            shared.pool.close_idle(state)
        log.warning("backend %s %s by the admin API", name, "drained" if drained else "enabled")
        return True

    def status(self) -> dict[str, Any]:
        shared = self._shared
        assert shared is not None
        snap = shared.snapshot
        states = [s.status() for s in snap.table.backends]
        total = sum(s.requests for s in states) or 1
        return {
            "listen": str(self.address),
            "tls_listen": str(self.tls_address) if self.tls_address else None,
            "tls_certificates": [
                {
                    "names": list(c.names),
                    "not_after": c.not_after.isoformat(),
                    "serial": f"{c.serial:x}",
                }
                for c in (self._tls.certificates if self._tls and self._tls_bound else ())
            ],
            "method": snap.spec.method,
            "draining": shared.draining,
            "healthy": self.healthy()[0],
            "open_connections": {
                "client": self.stats.client_connections,
                "backend": self.stats.upstream_connections,
            },
            "retries": self.stats.retries,
            "panic": snap.table.panic,
            "backends": [
                {
                    "name": s.name,
                    "url": s.url,
                    "weight": s.weight,
                    "available": s.available,
                    "healthy": s.healthy,
                    "passive_out": s.passive_out,
                    "drained": s.drained,
                    "in_flight": s.in_flight,
                    "queued": s.queued,
                    "requests": s.requests,
                    "share": round(s.requests / total, 4),
                    "health_detail": s.health_detail,
                }
                for s in states
            ],
        }
