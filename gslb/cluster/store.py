"""The cluster's view of etcd: keeps the shared state in memory and etcd in step with it.

One background task runs sessions: grant a lease, (re)load or resume, register the
node and its health verdicts under the lease, then keep the lease alive, watch
the prefix and publish verdict changes, until one of those fails. Between
sessions the node is disconnected: it keeps the last state it saw, and mutations
are refused (`ClusterUnavailable`), never applied locally alone.

The runtime reads the snapshots here (admin, peers' verdicts, nodes) whenever
`on_change` is called; it never waits on etcd except for a mutation.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from gslb.cluster.etcd import (
    EtcdClient,
    EtcdCompacted,
    EtcdUnavailable,
    Event,
    mod_revision_is,
    put_op,
)
from gslb.cluster.records import (
    ADMIN,
    AUDIT,
    HEALTH,
    NODES,
    Keys,
    NodeRecord,
    decode_admin_record,
    decode_audit,
    decode_node,
    decode_verdicts,
    encode_admin_record,
    encode_node,
    encode_verdicts,
)
from gslb.errors import GslbError
from gslb.model import ClusterSettings
from gslb.ratelog import RateLog
from gslb.state import AdminState

log = logging.getLogger(__name__)
MAX_NODES = 256  # nodes remembered, dead ones included (the oldest dead ones go first)
AUDIT_SHOWN = 50  # audit entries kept in memory for /v1/status
WATCH_RETRY_FIRST, WATCH_RETRY_MAX = 0.1, 1.0  # seconds between watch attempts
RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0)  # between sessions, growing
MUTATION_ATTEMPTS = 10  # transactions retried when another node committed in between
HEALTH_BATCH_SECONDS = 0.05  # verdict changes within this are written as one


class ClusterUnavailable(GslbError):
    """A mutation cannot be committed: etcd is unreachable or has no quorum."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    record: NodeRecord
    alive: bool
    last_seen: float


class ClusterStore:
    def __init__(
        self,
        settings: ClusterSettings,
        admin: AdminState,
        node: NodeRecord,
        on_change: Callable[[], None],
        *,
        observe_propagation: Callable[[float], None] = lambda seconds: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.name = settings.node
        self.keys = Keys(settings.prefix)
        ttl = settings.lease_ttl
        self._log = RateLog(log)
        self.client = EtcdClient(
            settings.etcd_endpoints, timeout=max(0.5, min(2.0, ttl / 3)), retry_for=min(ttl, 3.0)
        )
        self._on_change = on_change
        self._observe = observe_propagation
        self._clock = clock
        self.admin = admin
        self.admin_revision = 0  # mod revision of the admin key applied
        self.revision = 0  # the etcd revision everything here is up to date with
        self.audit: collections.deque[dict[str, Any]] = collections.deque(maxlen=AUDIT_SHOWN)
        self.peers_down: dict[str, frozenset[str]] = {}  # live peers' verdicts
        self.nodes: dict[str, NodeInfo] = {}
        self.node = node
        self.local_down: frozenset[str] = frozenset()
        self.connected = False
        self.since = clock()  # when `connected` last changed
        self.problem = "not connected yet"
        self._lease = 0
        self._health_dirty = asyncio.Event()
        self._node_dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._trim: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        await self.client.open()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        for task in (self._task, self._trim):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.connected and self._lease:
            # Leave at once rather than when the lease expires.
            with contextlib.suppress(EtcdUnavailable):
                await self.client.revoke(self._lease)
        await self.client.close()

    def _set_connected(self, connected: bool, problem: str = "") -> None:
        if connected != self.connected:
            self.connected = connected
            self.since = self._clock()
            if connected:
                log.info("cluster: connected to etcd (revision %d)", self.revision)
            else:
                log.error("cluster: etcd unreachable: %s", problem)
        self.problem = problem
        self._on_change()

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._session()
            except (EtcdUnavailable, EtcdCompacted) as exc:
                self._set_connected(False, str(exc))
            failures += 1
            await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1])
            if self.connected:
                failures = 0

    async def _session(self) -> None:
        self._lease = await self.client.grant(max(2, round(self.settings.lease_ttl)))
        if self.revision == 0:
            await self._reload()
        await self._register()
        self._set_connected(True)
        tasks = [
            asyncio.ensure_future(self._keep_alive()),
            asyncio.ensure_future(self._watch()),
            asyncio.ensure_future(self._publish()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _register(self) -> None:
        self._node_dirty.clear()
        self._health_dirty.clear()
        await self.client.txn(
            (),
            (
                put_op(self.keys.node(self.name), encode_node(self.node), self._lease),
                put_op(self.keys.health(self.name), encode_verdicts(self.local_down), self._lease),
            ),
        )

    async def _keep_alive(self) -> None:
        period = max(0.3, self.settings.lease_ttl / 3)
        while True:
            await asyncio.sleep(period)
            await self.client.keep_alive(self._lease)

    async def _publish(self) -> None:
        """Write this node's verdicts (and its record after a reload) when they change."""
        while True:
            dirty = asyncio.ensure_future(self._health_dirty.wait())
            node = asyncio.ensure_future(self._node_dirty.wait())
            try:
                await asyncio.wait((dirty, node), return_when=asyncio.FIRST_COMPLETED)
            finally:
                dirty.cancel()
                node.cancel()
            await asyncio.sleep(HEALTH_BATCH_SECONDS)
            self._health_dirty.clear()
            self._node_dirty.clear()
            await self._register()

    async def _watch(self) -> None:
        pause = WATCH_RETRY_FIRST
        while True:
            try:
                async for revision, events in self.client.watch(
                    self.keys.key(""), self.revision + 1
                ):
                    pause = WATCH_RETRY_FIRST
                    for event in events:
                        self._apply(event)
                    self.revision = max(self.revision, revision)
                    if events:
                        self._on_change()
            except EtcdCompacted as exc:
                log.warning("cluster: %s; reloading everything", exc)
                await self._reload()
            except EtcdUnavailable as exc:
                # Another member may serve the watch; the lease keep-alive decides
                # whether the session (and so `connected`) is lost.
                # While etcd is down this repeats: one line per interval, and a backoff.
                self._log.log(
                    logging.INFO, "watch", "cluster: watch broke (%s); watching again", exc
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, WATCH_RETRY_MAX)

    async def _reload(self) -> None:
        """Everything under the prefix, from scratch (start, or after compaction)."""
        found = await self.client.range_prefix(self.keys.key(""))
        admin_seen = False
        alive: set[str] = set()
        self.peers_down = {}
        audit: list[dict[str, Any]] = []
        for kv in found.kvs:
            kind, rest = self.keys.split(kv.key)
            if kind == ADMIN:
                admin_seen = True
            elif kind == NODES:
                alive.add(rest)
            elif kind == AUDIT:
                with contextlib.suppress(ValueError):
                    audit.append(decode_audit(kv.value))
                continue
            self._apply(Event("put", kv), measure=False)
        if not admin_seen:
            self.admin = AdminState()
        now = self._clock()
        for name, info in list(self.nodes.items()):
            if name not in alive and info.alive:
                self.nodes[name] = replace(info, alive=False, last_seen=now)
        self.audit.clear()
        self.audit.extend(reversed(audit[-AUDIT_SHOWN:]))
        self.revision = found.revision
        self._on_change()

    def _apply(self, event: Event, *, measure: bool = True) -> None:
        kind, rest = self.keys.split(event.kv.key)
        put = event.kind == "put"
        try:
            if kind == ADMIN:
                if event.kv.mod_revision <= self.admin_revision:
                    return  # our own commit, applied already
                self.admin_revision = event.kv.mod_revision
                if not put:
                    self.admin = AdminState()
                    return
                record = decode_admin_record(event.kv.value)
                self.admin = record.admin
                if measure and record.node != self.name:
                    self._observe(max(0.0, self._clock() - record.changed_at))
            elif kind == AUDIT and put:
                self.audit.appendleft(decode_audit(event.kv.value))
            elif kind == NODES:
                self._apply_node(rest, decode_node(event.kv.value) if put else None)
            elif kind == HEALTH and rest != self.name:
                if put:
                    self.peers_down[rest] = decode_verdicts(event.kv.value)
                else:
                    self.peers_down.pop(rest, None)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("cluster: ignoring a bad value at %r: %s", event.kv.key, exc)

    def _apply_node(self, name: str, record: NodeRecord | None) -> None:
        now = self._clock()
        if record is not None:
            self.nodes[name] = NodeInfo(record, True, now)
        elif name in self.nodes:
            self.nodes[name] = replace(self.nodes[name], alive=False, last_seen=now)
        if len(self.nodes) > MAX_NODES:
            dead = sorted((info.last_seen, n) for n, info in self.nodes.items() if not info.alive)
            for _, gone in dead[: len(self.nodes) - MAX_NODES]:
                del self.nodes[gone]

    # -- what the runtime calls -------------------------------------------------------------
    def live_peers_down(self) -> dict[str, frozenset[str]]:
        """Verdicts of the peers that are alive (their health key still exists)."""
        if not self.connected:
            return {}  # cut off, a node goes by its own checks
        return dict(self.peers_down)

    def publish_health(self, down: frozenset[str]) -> None:
        if down != self.local_down:
            self.local_down = down
            self._health_dirty.set()

    def publish_node(self, node: NodeRecord) -> None:
        if node != self.node:
            self.node = node
            self._node_dirty.set()

    async def mutate(
        self, change: Callable[[AdminState], AdminState], audit: dict[str, Any]
    ) -> tuple[AdminState, int]:
        """Commit `change` applied to etcd's current admin state, and the audit entry, in one
        transaction guarded by the admin key's revision; retried when another node
        committed in between, so concurrent changes on different nodes all survive."""
        if not self.connected:
            raise ClusterUnavailable(self._unavailable_text())
        key = self.keys.admin
        try:
            for _ in range(MUTATION_ATTEMPTS):
                current = await self.client.get(key)
                base = decode_admin_record(current.value).admin if current else AdminState()
                admin = change(base)
                now = self._clock()
                entry = {**audit, "node": self.name}
                result = await self.client.txn(
                    (mod_revision_is(key, current.mod_revision if current else 0),),
                    (
                        put_op(key, encode_admin_record(admin, now, self.name)),
                        put_op(
                            self.keys.audit(int(now * 1e9), self.name),
                            _json_bytes(entry),
                        ),
                    ),
                )
                if result.succeeded:
                    if result.revision > self.admin_revision:
                        self.admin_revision = result.revision
                        self.admin = admin
                        self._on_change()
                    self._schedule_trim()
                    return admin, result.revision
        except EtcdUnavailable as exc:
            raise ClusterUnavailable(f"etcd did not commit the change: {exc}") from exc
        except ValueError as exc:
            raise ClusterUnavailable(f"the admin state in etcd is unreadable: {exc}") from exc
        raise ClusterUnavailable("too many concurrent changes; try again")

    def _unavailable_text(self) -> str:
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since))
        return (
            f"etcd is unreachable since {since} ({self.problem}); the change was not made "
            "(this node keeps answering from the last state it saw)"
        )

    def _schedule_trim(self) -> None:
        if self._trim is None or self._trim.done():
            self._trim = asyncio.get_running_loop().create_task(self._trim_audit())

    async def _trim_audit(self) -> None:
        """Keep the newest `audit_keep` audit entries in etcd."""
        prefix = self.keys.key(AUDIT)
        with contextlib.suppress(EtcdUnavailable):
            found = await self.client.keys_with_prefix(prefix)
            excess = found.count - self.settings.audit_keep
            if excess > 0:
                first_kept = found.kvs[excess].key
                await self.client.delete(prefix, first_kept)

    def view(self) -> dict[str, Any]:
        """`GET /v1/cluster`."""
        digests = collections.Counter(
            info.record.config_digest for info in self.nodes.values() if info.alive
        )
        common = digests.most_common(1)[0][0] if digests else self.node.config_digest
        now = self._clock()
        nodes = []
        for name, info in sorted(self.nodes.items()):
            here = name == self.name
            disagree = sorted(
                (self.peers_down.get(name, frozenset()) if not here else self.local_down)
                ^ self.local_down
            )
            nodes.append(
                {
                    "name": name,
                    "alive": info.alive,
                    "self": here,
                    "config_generation": info.record.config_generation,
                    "config_digest": info.record.config_digest,
                    "config_differs": info.record.config_digest != common,
                    "last_seen": now if info.alive and self.connected else info.last_seen,
                    "down": sorted(self.local_down if here else self.peers_down.get(name, ())),
                    "differs_from_here": disagree,
                }
            )
        return {
            "node": self.name,
            "etcd": {
                "connected": self.connected,
                "since": self.since,
                "revision": self.revision,
                "endpoints": list(self.settings.etcd_endpoints),
                "problem": None if self.connected else self.problem,
            },
            "health_quorum": self.settings.health_quorum,
            "nodes": nodes,
        }


def _json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()
