"""Composition root of `gslb serve`: wires config, monitors, state, DNS and the admin API.

The runtime is the single writer of the (plan, state) view. Monitors report,
the admin API asks, reloads arrive; each builds a new immutable `View` and swaps
one reference, so the DNS path reads a consistent snapshot per query without
locks, and a change is visible in the very next answer.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from aiohttp import web

from gslb.api.app import make_app
from gslb.auth import find_token
from gslb.cluster.metrics import ClusterMetrics
from gslb.cluster.records import NodeRecord, config_digest, consensus_down, disagreements
from gslb.cluster.store import ClusterStore
from gslb.config import load_config
from gslb.dns import loop
from gslb.dns.answers import AnswerCache
from gslb.dns.cookies import SECRET_SIZE, parse_secrets
from gslb.dns.querylog import QueryLog, open_query_log
from gslb.dns.responder import Responder
from gslb.dns.rrl import rate_limit_filter
from gslb.dns.server import Bound, DnsServer
from gslb.dns.server_options import dns_handlers
from gslb.dns.workers import WorkerPool, WorkerSpec
from gslb.dnssec.signer import hour_of
from gslb.dnssec.status import DnssecMetrics, dnssec_status
from gslb.errors import ConfigError, GslbError
from gslb.geo import GeoDatabase, NoGeo, open_geo
from gslb.health import Health, Prober, ProbeResult, Scheduler, Target
from gslb.metrics import DnsStats, make_registry
from gslb.model import Config, CookieSettings, HostPort
from gslb.persist import StateFile
from gslb.plan import compile_plan
from gslb.rates import RecentCounts
from gslb.safety import SafetyRefused, dry_run, shortfalls
from gslb.select.client import Client, GeoLookup
from gslb.startup import startup_lines
from gslb.state import AdminState, RegionAdmin, State, View, endpoint_key
from gslb.status import build_status, services_failing_open

log = logging.getLogger(__name__)
audit_log = logging.getLogger("gslb.audit")
AUDIT_KEEP = 50
STATE_POLL_SECONDS = 1.0  # how soon a change another node made to a shared state file is seen
SAMPLE_SECONDS = 1.0  # how often the answer counters are sampled for the recent windows


def health_targets(config: Config) -> Iterator[Target]:
    """One target per checked endpoint: a region's `health:`, or the endpoint's own."""
    for name, region in sorted(config.regions.items()):
        seen: set[str] = set()
        for members in region.endpoints.values():
            for endpoint in members:
                spec = endpoint.health or region.health
                if spec is None or endpoint.address in seen:
                    continue
                seen.add(endpoint.address)
                yield Target(endpoint_key(name, endpoint.address), spec, endpoint.address)


def read_config_digest(directory: str) -> str:
    """The digest of the zone and region files: nodes that would answer differently differ.
    gslb.yaml is left out: its node name, listen addresses and state path differ by design."""
    files = []
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            if name.endswith((".yaml", ".yml")) and os.path.relpath(path, directory) != "gslb.yaml":
                try:
                    with open(path, "rb") as handle:
                        files.append((os.path.relpath(path, directory), handle.read()))
                except OSError:
                    continue
    return config_digest(files)


DRY_RUN_CLIENTS = 2000  # recent client networks a dry run steers (~0.1 s: bench/dry_run.py)


def forced(action: str, broken: list[str]) -> str:
    """The audit log's action, saying which safety rules it was forced past."""
    return f"{action} (forced past: {'; '.join(broken)})" if broken else action


def cookie_secrets(
    settings: CookieSettings | None, environ: Mapping[str, str], clustered: bool
) -> tuple[bytes, ...] | None:
    """`dns.cookies`' secrets, read once at start (None: cookies are off)."""
    if settings is None:
        return None
    text = environ.get(settings.secret_env, "").strip()
    if not text:
        # Fine for one node; nodes of a cluster then reject each other's cookies.
        log.log(
            logging.WARNING if clustered else logging.INFO,
            "dns.cookies: %s is not set: a random secret for this run",
            settings.secret_env,
        )
        return (os.urandom(SECRET_SIZE),)
    try:
        return parse_secrets(text)
    except ValueError as exc:
        raise GslbError(f"dns.cookies: {settings.secret_env}: {exc}") from exc


class Runtime:
    def __init__(
        self,
        config_dir: str,
        *,
        dns: Sequence[HostPort] | None = None,
        api: HostPort | None = None,
        environ: Mapping[str, str] | None = None,
        workers: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock`: the time the recent-answer windows are kept by (a test's own)."""
        self.config_dir = config_dir
        self._dns_override = tuple(dns) if dns else None
        self._api_override = api
        self._environ = environ if environ is not None else os.environ
        config = load_config(config_dir)
        self.generation = 1
        self.cookie_secrets = cookie_secrets(
            config.settings.cookies, self._environ, config.settings.cluster is not None
        )
        self.state_file = StateFile(config.settings.state_path)
        loaded = self.state_file.load()
        self.state_problem = loaded.problem
        self._view = View(compile_plan(config, self.generation), State(admin=loaded.admin))
        self.geo: GeoDatabase | NoGeo = open_geo(config.settings.geoip_database)
        found = find_token(config.settings, self._environ)
        self.token: str | None = None if found is None else found[0]
        self.token_source: str | None = None if found is None else found[1]  # never the token
        self.stats = DnsStats()
        self.workers = workers or config.settings.workers
        self.pool: WorkerPool | None = None
        self.registry = make_registry(self.current_stats, self.view)
        # DNSSEC: cached answers hold signatures; they are dropped each signing period
        # (gslb/dnssec/signer.py), so none older than the last drop is ever served.
        self.wall_clock = time.time
        self.resigned_at = self.wall_clock()
        self.registry.register(DnssecMetrics(lambda: self._view.plan, lambda: self.resigned_at))
        # Steered answers per (service, region) over the last minute and 5 minutes.
        self.recent: RecentCounts[tuple[str, str]] = RecentCounts(clock=clock)
        self._sampler: asyncio.Task[None] | None = None
        self.audit: collections.deque[dict[str, Any]] = collections.deque(maxlen=AUDIT_KEEP)
        entries = config.settings.cache_entries
        self.responder = Responder(
            self.view,
            self.geo_lookup(),
            udp_cap=config.settings.max_udp_size,
            observer=self.stats,
            cache=AnswerCache(
                max_answers=entries,
                max_clients=entries,
                max_bytes=config.settings.cache_memory,
            ),
            identity=config.settings.identity,
            wall_clock=lambda: self.wall_clock(),
        )
        self.prober = Prober()
        self.scheduler = Scheduler(self.prober, self._on_health, on_result=self._on_result)
        self._target_regions: dict[str, str] = {}
        self.dns: DnsServer | None = None
        self.query_log: QueryLog | None = None
        self.dns_bound: list[Bound] = []
        self.api_runner: web.AppRunner | None = None
        self.api_port: int | None = None
        self._reload_lock = asyncio.Lock()
        self._state_signature = self.state_file.signature()
        self._watch: asyncio.Task[None] | None = None
        self._local_down: frozenset[str] = frozenset()  # what this node's own checks say
        self.cluster: ClusterStore | None = None
        if config.settings.cluster is not None:
            metrics = ClusterMetrics(lambda: self.cluster)
            self.registry.register(metrics)
            self.cluster = ClusterStore(
                config.settings.cluster,
                loaded.admin,
                self._node_record(),
                self._on_cluster_change,
                observe_propagation=metrics.observe_propagation,
            )

    # -- reading ------------------------------------------------------------------------
    @property
    def config(self) -> Config:
        return self._view.plan.config

    def view(self) -> View:
        return self._view

    def geo_lookup(self) -> GeoLookup | None:
        return None if isinstance(self.geo, NoGeo) else self.geo

    def current_stats(self) -> DnsStats:
        """DNS counters of this process, or of every worker with `--workers`."""
        if self.pool is None:
            return self.stats
        return self.stats.with_queries_from(self.pool.snapshots())

    def sample_answers(self) -> DnsStats:
        """Hand the answer counters to the recent windows; the counters, folded."""
        stats = self.current_stats()
        stats.fold()
        self.recent.sample(stats.answers)
        return stats

    async def _sample_every_second(self) -> None:
        """The query path only counts; this puts the counts into the windows' seconds."""
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            self.sample_answers()
            self.resign_if_due()

    def resign_if_due(self) -> bool:
        """At a new signing period, a copy of the plan: every answer cache (workers' too)
        sees a new plan, drops all it holds, static answers included, and the next
        queries sign afresh."""
        now = self.wall_clock()
        if hour_of(now) == hour_of(self.resigned_at):
            return False
        self.resigned_at = now
        if not any(zone.signer is not None for zone in self._view.plan.zones.values()):
            return False
        self._view = View(dataclasses.replace(self._view.plan), self._view.state)
        if self.pool is not None:
            self.pool.publish(self._view)
        return True

    def status(self) -> dict[str, Any]:
        audit = list(self.audit) if self.cluster is None else list(self.cluster.audit)
        stats = self.sample_answers()  # the windows up to this moment
        status = build_status(self._view, self.scheduler.health(), stats, audit, self.recent.read())
        if self.cluster is not None:
            status["cluster"] = self._cluster_status()
        signed = dnssec_status(self._view.plan, self.resigned_at)
        if signed:
            status["dnssec"] = signed
        if self.pool is not None:
            status["dns_workers"] = {
                "pids": self.pool.pids(),
                "restarts": self.pool.restarts,
                "queries": self.pool.queries_per_worker(),
            }
        return status

    def _cluster_status(self) -> dict[str, Any]:
        """The cluster part of /v1/status: connection, and where this node disagrees."""
        assert self.cluster is not None
        peers = self.cluster.live_peers_down()
        split = disagreements(self._local_down, peers, self._view.state.down)
        return {
            "node": self.cluster.name,
            "connected": self.cluster.connected,
            "since": self.cluster.since,
            "problem": None if self.cluster.connected else self.cluster.problem,
            "revision": self.cluster.revision,
            "live_nodes": 1 + len(peers),
            "health_quorum": self.cluster.settings.health_quorum,
            "nodes": self.cluster.view()["nodes"],
            "disagreements": [
                {
                    "endpoint": d.endpoint,
                    "here": d.here,
                    "down_on": d.down_on,
                    "nodes": d.nodes,
                    "taken_as": d.taken_as,
                    "text": d.text(),
                }
                for d in split
            ],
        }

    def cluster_health_notes(self) -> dict[str, Any] | None:
        """For /v1/explain: where this node's own health verdicts are outvoted."""
        if self.cluster is None:
            return None
        status = self._cluster_status()
        return {k: status[k] for k in ("health_quorum", "live_nodes", "disagreements")}

    def cluster_view(self) -> dict[str, Any] | None:
        return None if self.cluster is None else self.cluster.view()

    def _node_record(self) -> NodeRecord:
        assert self.config.settings.cluster is not None
        return NodeRecord(
            self.config.settings.cluster.node,
            self.generation,
            read_config_digest(self.config_dir),
            time.time(),
        )

    def _effective_down(self) -> frozenset[str]:
        if self.cluster is None:
            return self._local_down
        return consensus_down(
            self._local_down,
            self.cluster.live_peers_down(),
            self.cluster.settings.health_quorum,
        )

    def _on_cluster_change(self) -> None:
        """etcd brought something (admin state, a peer's verdicts, a node leaving)."""
        assert self.cluster is not None
        state = self._view.state
        admin = self.cluster.admin
        down = self._effective_down()
        if admin == state.admin and down == state.down:
            return
        if admin != state.admin:
            log.info("admin state changed in the cluster: applying it")
            self.state_file.save(admin)  # the last state seen, for a start without etcd
            state = state.with_admin(admin)
        self._swap_state(state.with_down(down))

    # -- the single writer ----------------------------------------------------------------
    def _swap_state(self, state: State) -> None:
        self._view = View(self._view.plan, state)
        if self.pool is not None:
            self.pool.publish(self._view)

    def _on_health(self, key: str, health: Health) -> None:
        local = self._local_down - {key} if health.up else self._local_down | {key}
        if local == self._local_down:
            return
        self._local_down = local
        # A recovery is news, not a problem: INFO; a failure stays a WARNING.
        log.log(
            logging.INFO if health.up else logging.WARNING,
            "endpoint %s is now %s (%s)",
            key,
            "up" if health.up else "DOWN",
            health.last_detail,
        )
        if self.cluster is not None:
            self.cluster.publish_health(local)
        state = self._view.state.with_down(self._effective_down())
        if state is not self._view.state:
            self._swap_state(state)

    def _on_result(self, key: str, result: ProbeResult) -> None:
        self.stats.observe_check(key.split("/", 1)[0], result.ok, result.latency)

    def _record(self, actor: str, action: str, target: str, reason: str) -> dict[str, Any]:
        entry = self._entry(actor, action, target, reason)
        self.audit.appendleft(entry)
        self._log_audit(entry)
        return entry

    def _log_audit(self, entry: Mapping[str, Any]) -> None:
        audit_log.info(
            "actor=%s action=%s target=%s reason=%r",
            entry["actor"],
            entry["action"],
            entry["target"],
            entry["reason"],
        )

    def _set_admin(self, admin: AdminState) -> list[str]:
        state = self._view.state.with_admin(admin)
        self._swap_state(state)
        self.state_file.save(admin)
        self._state_signature = self.state_file.signature()
        return services_failing_open(self._view)

    async def _watch_state_file(self) -> None:
        """Pick up admin changes written by another node sharing the state file."""
        while True:
            await asyncio.sleep(STATE_POLL_SECONDS)
            signature = self.state_file.signature()
            if signature is None or signature == self._state_signature:
                continue
            self._state_signature = signature
            loaded = self.state_file.load()
            if loaded.problem is None and loaded.admin != self._view.state.admin:
                log.info("admin state changed on disk (another node): applying it")
                self._swap_state(self._view.state.with_admin(loaded.admin))

    def _entry(self, actor: str, action: str, target: str, reason: str) -> dict[str, Any]:
        return {
            "time": time.time(),
            "actor": actor,
            "action": action,
            "target": target,
            "reason": reason,
        }

    async def _commit(
        self, change: Callable[[AdminState], AdminState], entry: dict[str, Any]
    ) -> tuple[list[str], int | None]:
        """Apply an admin change: committed to etcd first with a cluster, else to the file.
        Raises ClusterUnavailable when etcd cannot commit it."""
        if self.cluster is None:
            failing = self._set_admin(change(self._view.state.admin))
            self.audit.appendleft(entry)
            return failing, None
        _, revision = await self.cluster.mutate(change, entry)
        self._on_cluster_change()
        return services_failing_open(self._view), revision

    def _preview(
        self, change: Callable[[AdminState], AdminState], force: bool
    ) -> tuple[State, list[str]]:
        """The state the change would make, and the safety rules it breaks (texts).
        Raises SafetyRefused when it breaks one and is not forced."""
        view = self._view
        after = view.state.with_admin(change(view.state.admin))
        minimum = self.config.settings.safety.min_serving_regions
        broken = [s.text(minimum) for s in shortfalls(view.plan, view.state, after, minimum)]
        if broken and not force:
            raise SafetyRefused(broken)
        return after, broken

    def recent_clients(self) -> list[Client]:
        """The client networks answered most recently (the answer cache's client table,
        newest last), at most DRY_RUN_CLIENTS; none with --workers (the workers hold them)."""
        if self.pool is not None:
            return []
        return list(self.responder.cache.clients.values())[-DRY_RUN_CLIENTS:]

    async def _dry_run(self, after: State, broken: list[str], **what: Any) -> dict[str, Any]:
        view = self._view
        clients = self.recent_clients()
        services = await asyncio.to_thread(dry_run, view.plan, view.state, after, clients)
        return {
            "dry_run": True,
            **what,
            "clients": len(clients),
            "services": services,
            "fail_open": services_failing_open(view, after),
            "safety": broken,
        }

    async def _admin_change(
        self,
        change: Callable[[AdminState], AdminState],
        target: tuple[str, str],
        admin: str,
        actor: str,
        asked: tuple[str, bool, bool],
    ) -> dict[str, Any]:
        """Check an admin change against the safety rules, then preview it (dry run) or
        commit and audit it. `target`: ("region" or "endpoint", its name); `asked`:
        (reason, force, dry_run)."""
        kind, name = target
        reason, force, dry_run = asked
        after, broken = self._preview(change, force or dry_run)  # a dry run only says so
        if dry_run:
            return await self._dry_run(after, broken, **{kind: name, "admin": admin})
        entry = self._entry(actor, forced(f"{kind} {admin}", broken), name, reason)
        failing, revision = await self._commit(change, entry)
        self._log_audit(entry)
        result: dict[str, Any] = {kind: name, "admin": admin, "audit": entry, "fail_open": failing}
        if revision is not None:
            result["revision"] = revision
        if failing:
            result["warning"] = (
                "no usable region is left for "
                + ", ".join(failing)
                + ": those names answer fail-open (as if all were healthy)"
            )
        return result

    async def set_region(
        self,
        region: str,
        admin: str,
        actor: str,
        reason: str,
        *,
        force: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        assert admin in ("enabled", "disabled", "draining")
        new_admin: RegionAdmin = admin  # type: ignore[assignment]
        return await self._admin_change(
            lambda a: a.with_region(region, new_admin),
            ("region", region),
            admin,
            actor,
            (reason, force, dry_run),
        )

    async def set_endpoint(
        self,
        region: str,
        address: str,
        admin: str,
        actor: str,
        reason: str,
        *,
        force: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        assert admin in ("enabled", "disabled", "draining")
        new_admin: RegionAdmin = admin  # type: ignore[assignment]
        key = endpoint_key(region, address)
        return await self._admin_change(
            lambda a: a.with_endpoint(key, new_admin),
            ("endpoint", key),
            admin,
            actor,
            (reason, force, dry_run),
        )

    async def reload(self, actor: str = "SIGHUP", dry_run: bool = False) -> dict[str, Any]:
        """Re-read the config directory; a bad one is refused and the old one keeps serving.
        `dry_run`: only check it (what `gslb check` says, from this node)."""
        if dry_run:
            try:
                await asyncio.to_thread(load_config, self.config_dir)
            except ConfigError as exc:
                errors = [str(p) for p in exc.problems]
                return {
                    "ok": False,
                    "dry_run": True,
                    "generation": self.generation,
                    "errors": errors,
                }
            return {"ok": True, "dry_run": True, "generation": self.generation, "errors": []}
        async with self._reload_lock:
            try:
                config = await asyncio.to_thread(load_config, self.config_dir)
            except ConfigError as exc:
                self.stats.count_reload(False)
                errors = [str(p) for p in exc.problems]
                for line in errors:
                    log.error("reload refused: %s", line)
                self._record(actor, "reload refused", self.config_dir, errors[0] if errors else "")
                return {"ok": False, "generation": self.generation, "errors": errors}
            self.generation += 1
            plan = compile_plan(config, self.generation)
            if config.settings.geoip_database != self.config.settings.geoip_database:
                log.warning("geoip.database changed: the new database is used after a restart")
            self.scheduler.set_targets(health_targets(config))
            health = self.scheduler.health()
            self._local_down = frozenset(k for k, h in health.items() if not h.up)
            if self.cluster is not None:
                self.cluster.publish_health(self._local_down)
                self.cluster.publish_node(self._node_record())
            state = self._view.state.with_down(self._effective_down())
            self._view = View(plan, State(state.version + 1, state.down, state.admin))
            if self.pool is not None:
                self.pool.publish(self._view)
            self.stats.count_reload(True)
            self._record(actor, "reload", self.config_dir, f"generation {self.generation}")
            log.info("config generation %d loaded from %s", self.generation, self.config_dir)
            return {"ok": True, "generation": self.generation, "errors": []}

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        settings = self.config.settings
        for line in startup_lines(self.config, self.geo, self.token_source, self.workers):
            log.info("%s", line)
        if self.state_problem:
            log.error("%s", self.state_problem)
        await self.prober.open()
        self.scheduler.set_targets(health_targets(self.config))
        await self.scheduler.start()
        listen = self._dns_override or settings.dns_listen
        if self.workers > 1:
            spec = WorkerSpec(
                self._view,
                tuple(listen),
                settings.geoip_database,
                udp_cap=settings.max_udp_size,
                tcp_idle_timeout=settings.tcp_idle_timeout,
                tcp=settings.tcp,
                rate_limit=settings.rate_limit,
                cookie_secrets=self.cookie_secrets,
                identity=settings.identity,
                query_log=settings.query_log,
                cache_entries=settings.cache_entries,
                cache_memory=settings.cache_memory,
            )
            self.pool = WorkerPool(spec, self.workers)
            self.dns_bound = await self.pool.start()
        else:
            handle, cached, limit = dns_handlers(
                self.responder.handle_wire,
                self.responder.answer_cached,
                rate_limit_filter(settings.rate_limit, self.stats),
                udp_cap=settings.max_udp_size,
                cookie_secrets=self.cookie_secrets,
                identity=settings.identity,
            )
            if settings.query_log is not None:
                self.query_log = open_query_log(
                    settings.query_log.path, settings.query_log.sample, settings.identity
                )
                if self.query_log is not None:
                    handle, cached = self.query_log.wrap(handle, cached)
            self.dns = DnsServer(
                handle,
                listen,
                cached=cached,
                tcp_idle_timeout=settings.tcp_idle_timeout,
                tcp=settings.tcp,
                limit=limit,
            )
            self.dns_bound = await self.dns.start()
        for bound in self.dns_bound:
            # Printed, not only logged: scripts and tests read the bound ports from here.
            print(f"dns {bound.host} {bound.port}", flush=True)
        api = self._api_override or settings.api_listen
        self.api_runner = web.AppRunner(make_app(self), access_log=None)
        await self.api_runner.setup()
        site = web.TCPSite(self.api_runner, api.host, api.port)
        await site.start()
        self.api_port = int(self.api_runner.addresses[-1][1])
        print(f"api {api.host} {self.api_port}", flush=True)
        self._sampler = asyncio.get_running_loop().create_task(self._sample_every_second())
        if self.cluster is not None:
            await self.cluster.start()
        else:
            self._watch = asyncio.get_running_loop().create_task(self._watch_state_file())
        if not self.token:
            where = settings.token_env + (f", {settings.token_file}" if settings.token_file else "")
            log.warning("no API token configured (%s): admin mutations are refused", where)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self._sampler is not None:
            self._sampler.cancel()
        if self.cluster is not None:
            await self.cluster.stop()
        if self.dns is not None:
            await self.dns.close()
        if self.query_log is not None:
            await asyncio.to_thread(self.query_log.close)
        if self.pool is not None:
            await self.pool.stop()
        if self.api_runner is not None:
            await self.api_runner.cleanup()
        await self.scheduler.stop()
        await self.prober.close()
        self.geo.close()


async def _serve(runtime: Runtime) -> None:
    await runtime.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(runtime.reload("SIGHUP")))
    print("gslb serving; Ctrl-C stops", flush=True)
    await stop.wait()
    await runtime.stop()


def serve(
    config_dir: str,
    *,
    dns: Sequence[HostPort] | None = None,
    api: HostPort | None = None,
    workers: int | None = None,
) -> int:
    async def main() -> None:
        await _serve(Runtime(config_dir, dns=dns, api=api, workers=workers))

    loop.run(main())
    return 0
