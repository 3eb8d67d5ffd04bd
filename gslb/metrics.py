"""Prometheus metrics of `gslb serve`, on the project's own registry.

The query path only bumps plain counters (a labelled prometheus-client counter
costs more than answering a cached query): dict counters for queries the full
path answers, and for cache hits the served reply's tally, which `fold` adds to
the dicts. The collector turns them into metric families when /metrics is
scraped. The same counters feed the status page's traffic shares.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gslb.config.names import plain
from gslb.dns.answers import Tally
from gslb.dns.codec import qtype_label, qtype_label_name, rcode_name
from gslb.histogram import Histogram
from gslb.select import Steering
from gslb.state import REGION_ADMIN_STATES, REGION_STATES, View, endpoint_key, region_state

QUERY_BUCKETS = (0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05)
# Tallies held before they are added up even without a scrape: a tally is held once per
# fold however often it is hit, so this bounds memory, not work per query.
FOLD_AT = 100_000
CHECK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class DnsStats:
    """Counters bumped by the DNS path and the monitors; read at scrape time."""

    queries: dict[tuple[str | None, int, int], int] = field(default_factory=dict)
    pending: list[Tally] = field(default_factory=list)  # tallies hit since the last fold
    answers: dict[tuple[str, str], int] = field(default_factory=dict)  # (service, region)
    endpoint_answers: dict[tuple[str, str, str], int] = field(default_factory=dict)
    fail_open: dict[str, int] = field(default_factory=dict)
    latency: Histogram = field(default_factory=lambda: Histogram(QUERY_BUCKETS))
    checks: dict[tuple[str, bool], int] = field(default_factory=dict)  # (region, ok)
    check_latency: dict[str, Histogram] = field(default_factory=dict)
    reloads: dict[str, int] = field(default_factory=dict)  # "ok" / "error"
    rate_limited: dict[str, int] = field(default_factory=dict)  # RRL action -> replies

    def observe_query(
        self, zone: str | None, qtype: int, rcode: int, steering: Steering | None, seconds: float
    ) -> None:
        """One query answered by the full path (which costs far more than making a tally)."""
        self._count(Tally(zone, qtype, rcode, steering), 1)
        self.latency.observe(seconds)

    def watch(self, tally: Tally) -> None:
        """A cached reply's first hit since the last `fold`: count its hits then."""
        self.pending.append(tally)
        if len(self.pending) >= FOLD_AT:
            self.fold()

    def fold(self) -> None:
        """Add the hits of cached replies (their tallies) to the counters."""
        pending, self.pending = self.pending, []
        for tally in pending:
            n, tally.n = tally.n, 0
            self._count(tally, n)

    def _count(self, tally: Tally, n: int) -> None:
        self.queries[tally.query] = self.queries.get(tally.query, 0) + n
        if tally.answer is None:
            return
        self.answers[tally.answer] = self.answers.get(tally.answer, 0) + n
        endpoints = self.endpoint_answers
        for key in tally.endpoints:
            endpoints[key] = endpoints.get(key, 0) + n
        if tally.fail_open is not None:
            self.fail_open[tally.fail_open] = self.fail_open.get(tally.fail_open, 0) + n

    def observe_check(self, region: str, ok: bool, seconds: float) -> None:
        key = (region, ok)
        self.checks[key] = self.checks.get(key, 0) + 1
        histogram = self.check_latency.get(region)
        if histogram is None:
            histogram = self.check_latency[region] = Histogram(CHECK_BUCKETS)
        histogram.observe(seconds)

    def count_reload(self, ok: bool) -> None:
        key = "ok" if ok else "error"
        self.reloads[key] = self.reloads.get(key, 0) + 1

    def query_snapshot(self) -> dict[str, Any]:
        """The DNS-side counters as plain JSON-able data (a worker sends this to its parent)."""
        self.fold()
        return {
            "queries": [[*k, v] for k, v in self.queries.items()],
            "answers": [[*k, v] for k, v in self.answers.items()],
            "endpoint_answers": [[*k, v] for k, v in self.endpoint_answers.items()],
            "fail_open": [[k, v] for k, v in self.fail_open.items()],
            "latency": [list(self.latency.counts), self.latency.total],
            "rate_limited": dict(self.rate_limited),
        }

    def add_query_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Add another process's DNS counters (from `query_snapshot`) to these."""
        for zone, qtype, rcode, n in snapshot["queries"]:
            key = (zone, qtype, rcode)
            self.queries[key] = self.queries.get(key, 0) + n
        for service, region, n in snapshot["answers"]:
            self.answers[(service, region)] = self.answers.get((service, region), 0) + n
        for service, region, address, n in snapshot["endpoint_answers"]:
            triple = (service, region, address)
            self.endpoint_answers[triple] = self.endpoint_answers.get(triple, 0) + n
        for service, n in snapshot["fail_open"]:
            self.fail_open[service] = self.fail_open.get(service, 0) + n
        for action, n in snapshot.get("rate_limited", {}).items():
            self.rate_limited[action] = self.rate_limited.get(action, 0) + n
        counts, total = snapshot["latency"]
        for i, n in enumerate(counts):
            self.latency.counts[i] += n
        self.latency.total += total

    def with_queries_from(self, snapshots: Iterable[dict[str, Any]]) -> DnsStats:
        """A new DnsStats: these counters plus the DNS counters of `snapshots`."""
        self.fold()
        merged = DnsStats(
            queries=dict(self.queries),
            answers=dict(self.answers),
            endpoint_answers=dict(self.endpoint_answers),
            fail_open=dict(self.fail_open),
            rate_limited=dict(self.rate_limited),
            checks=self.checks,
            check_latency=self.check_latency,
            reloads=self.reloads,
        )
        merged.latency.counts = list(self.latency.counts)
        merged.latency.total = self.latency.total
        for snapshot in snapshots:
            merged.add_query_snapshot(snapshot)
        return merged


class ServeCollector(Collector):
    def __init__(self, stats: Callable[[], DnsStats], view: Callable[[], View]) -> None:
        self._stats = stats
        self._view = view

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        stats.fold()
        queries = CounterMetricFamily(
            "gslb_dns_queries",
            "DNS queries answered, by zone, type and rcode",
            labels=["zone", "qtype", "rcode"],
        )
        by_labels: dict[tuple[str, str, str], int] = {}
        served = self._view().plan.zones
        for (zone, qtype, rcode), count in stats.queries.items():
            # Bounded label sets: zones we serve (else ""), known type names (else "other").
            zone_label = zone if zone is not None and zone in served else ""
            labels = (zone_label, qtype_label_name(qtype_label(qtype)), rcode_name(rcode))
            by_labels[labels] = by_labels.get(labels, 0) + count
        for labels, count in sorted(by_labels.items()):
            queries.add_metric(list(labels), count)
        yield queries
        limited = CounterMetricFamily(
            "gslb_dns_rate_limited",
            "UDP replies held back by response rate limiting: dropped, or sent truncated (slip)",
            labels=["action"],
        )
        for action in ("drop", "slip"):
            limited.add_metric([action], stats.rate_limited.get(action, 0))
        yield limited
        answers = CounterMetricFamily(
            "gslb_dns_answers",
            "Steered answers by service, its policy and the region chosen",
            labels=["service", "policy", "region"],
        )
        services = self._view().plan.services
        for (service, region), count in sorted(stats.answers.items()):
            # The policy tells an intended skew (failover: all to the first region) from
            # mis-steering; a service gone from the config since has "".
            plan = services.get(service)
            policy = plan.policy if plan is not None else ""
            answers.add_metric([plain(service), policy, region], count)
        yield answers
        endpoint = CounterMetricFamily(
            "gslb_dns_endpoint_answers",
            "Times an endpoint's address was in a steered answer",
            labels=["service", "region", "endpoint"],
        )
        for (service, region, address), count in sorted(stats.endpoint_answers.items()):
            endpoint.add_metric([plain(service), region, address], count)
        yield endpoint
        fail_open = CounterMetricFamily(
            "gslb_dns_fail_open",
            "Answers given while no region was usable (fail-open)",
            labels=["service"],
        )
        for service, count in sorted(stats.fail_open.items()):
            fail_open.add_metric([plain(service)], count)
        yield fail_open
        latency = HistogramMetricFamily(
            "gslb_dns_query_duration_seconds", "Time to answer one DNS query"
        )
        latency.add_metric([], stats.latency.cumulative(), stats.latency.total)
        yield latency
        yield from self._health_metrics()
        checks = CounterMetricFamily(
            "gslb_health_checks",
            "Health checks run, by region and result",
            labels=["region", "result"],
        )
        for (region, ok), count in sorted(stats.checks.items()):
            checks.add_metric([region, "ok" if ok else "fail"], count)
        yield checks
        check_latency = HistogramMetricFamily(
            "gslb_health_check_duration_seconds", "Health check duration", labels=["region"]
        )
        for region, histogram in sorted(stats.check_latency.items()):
            check_latency.add_metric([region], histogram.cumulative(), histogram.total)
        yield check_latency
        reloads = CounterMetricFamily(
            "gslb_config_reloads", "Config reloads by result", labels=["result"]
        )
        for result in ("ok", "error"):
            reloads.add_metric([result], stats.reloads.get(result, 0))
        yield reloads
        yield GaugeMetricFamily(
            "gslb_config_generation",
            "Generation of the config in use (1 at start)",
            value=self._view().plan.generation,
        )

    def _health_metrics(self) -> Iterator[Metric]:
        view = self._view()
        state = view.state
        endpoint_up = GaugeMetricFamily(
            "gslb_endpoint_up",
            "1 when an endpoint is usable (healthy and not disabled)",
            labels=["region", "endpoint"],
        )
        endpoint_healthy = GaugeMetricFamily(
            "gslb_endpoint_healthy",
            "Measured health of an endpoint (1 up, 0 down)",
            labels=["region", "endpoint"],
        )
        region_up = GaugeMetricFamily(
            "gslb_region_up",
            "1 when a region is enabled and has a usable endpoint",
            labels=["region"],
        )
        region_admin = GaugeMetricFamily(
            "gslb_region_admin_state",
            "Operator state of a region (1 for the current one)",
            labels=["region", "state"],
        )
        region_states = GaugeMetricFamily(
            "gslb_region_state",
            "What the status page shows of a region (1 for the current one): up, down (no "
            "enabled endpoint is healthy), disabled or draining (by the operator, or every "
            "endpoint so)",
            labels=["region", "state"],
        )
        for name, region in sorted(view.plan.config.regions.items()):
            any_usable = False
            listed = []
            for address in region.distinct_endpoints():
                key = endpoint_key(name, address)
                usable = state.endpoint_usable(key)
                any_usable = any_usable or usable
                listed.append({"admin": state.admin.endpoint(key), "usable": usable})
                endpoint_up.add_metric([name, address], 1.0 if usable else 0.0)
                endpoint_healthy.add_metric([name, address], 0.0 if key in state.down else 1.0)
            admin = state.admin.region(name)
            region_up.add_metric([name], 1.0 if any_usable and admin == "enabled" else 0.0)
            for admin_state in REGION_ADMIN_STATES:
                region_admin.add_metric([name, admin_state], 1.0 if admin == admin_state else 0.0)
            now = region_state(admin, listed)
            for shown in REGION_STATES:
                region_states.add_metric([name, shown], 1.0 if now == shown else 0.0)
        yield endpoint_up
        yield endpoint_healthy
        yield region_up
        yield region_admin
        yield region_states


def make_registry(stats: Callable[[], DnsStats], view: Callable[[], View]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServeCollector(stats, view))
    return registry
