"""/metrics for the proxy: its own CollectorRegistry, filled from `ProxyStats` at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gslb.proxy.backends import BackendState
from gslb.proxy.stats import ProxyStats


class ProxyCollector(Collector):
    def __init__(self, stats: ProxyStats, backends: Callable[[], Sequence[BackendState]]) -> None:
        self._stats = stats
        self._backends = backends

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        requests = CounterMetricFamily(
            "gslb_proxy_requests",
            "Requests answered, by backend ('-' when the proxy answered itself) and status",
            labels=["backend", "code"],
        )
        for (backend, code), count in sorted(stats.requests.items()):
            requests.add_metric([backend, str(code)], count)
        yield requests
        latency = HistogramMetricFamily(
            "gslb_proxy_request_duration_seconds",
            "Time from a request's head to the end of its answer",
        )
        latency.add_metric([], stats.latency.cumulative(), stats.latency.total)
        yield latency
        connections = GaugeMetricFamily(
            "gslb_proxy_open_connections", "Open connections", labels=["side"]
        )
        connections.add_metric(["client"], stats.client_connections)
        connections.add_metric(["backend"], stats.upstream_connections)
        yield connections
        yield GaugeMetricFamily(
            "gslb_proxy_tunnels_open",
            "Switched connections (WebSocket or other Upgrade) being relayed",
            value=stats.tunnels_open,
        )
        yield CounterMetricFamily(
            "gslb_proxy_retries", "Requests retried on another backend", value=stats.retries
        )
        yield CounterMetricFamily(
            "gslb_proxy_access_log_dropped",
            "Access log lines dropped because the writer fell behind",
            value=stats.access_log_dropped,
        )
        yield CounterMetricFamily(
            "gslb_proxy_accept_paused",
            "Times max_connections was reached and the proxy stopped accepting",
            value=stats.accept_paused,
        )
        yield CounterMetricFamily(
            "gslb_proxy_queue_timeouts",
            "Requests answered 503 after waiting queue_timeout for a backend at its cap",
            value=stats.queue_timeouts,
        )
        handshakes = CounterMetricFamily(
            "gslb_proxy_tls_handshakes",
            "TLS handshakes on the HTTPS listener, by result: ok (full), resumed (a session "
            "ticket or id), version (no common TLS version), timeout, closed, error",
            labels=["result"],
        )
        for result, count in sorted(stats.tls_handshakes.items()):
            handshakes.add_metric([result], count)
        yield handshakes
        changes = CounterMetricFamily(
            "gslb_proxy_health_changes",
            "Backends becoming usable (up) or unusable (down)",
            labels=["backend", "to"],
        )
        for (backend, to), count in sorted(stats.health_changes.items()):
            changes.add_metric([backend, to], count)
        yield changes
        up = GaugeMetricFamily(
            "gslb_proxy_backend_available", "1 when a backend takes requests", labels=["backend"]
        )
        in_flight = GaugeMetricFamily(
            "gslb_proxy_backend_in_flight", "Requests in flight per backend", labels=["backend"]
        )
        for b in self._backends():
            up.add_metric([b.name], 1.0 if b.available else 0.0)
            in_flight.add_metric([b.name], b.in_flight)
        yield up
        yield in_flight


def make_registry(
    stats: ProxyStats, backends: Callable[[], Sequence[BackendState]]
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProxyCollector(stats, backends))
    return registry
