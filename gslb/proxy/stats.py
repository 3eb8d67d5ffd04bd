"""The proxy's own counters: plain numbers bumped on the request path, read at scrape time.

Bumping a prometheus_client metric takes a lock and a label lookup per call; these are plain
attribute and dict updates, and `gslb.proxy.metrics` turns them into Prometheus families only
when /metrics is read.
"""

from __future__ import annotations

from gslb.histogram import Histogram

# Latency buckets (seconds): fine enough around the milliseconds a proxy hop costs that
# P50/P95/P99 can be read, wide enough for slow backends.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class ProxyStats:
    """Everything /metrics and /status count. Owned by one ProxyServer."""

    __slots__ = (
        "accept_paused",
        "access_log_dropped",
        "client_connections",
        "health_changes",
        "latency",
        "queue_timeouts",
        "requests",
        "retries",
        "tls_handshakes",
        "tunnels_open",
        "upstream_connections",
    )

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}  # (backend or "-", status) -> count
        self.latency = Histogram(LATENCY_BUCKETS)
        self.client_connections = 0
        self.upstream_connections = 0
        self.retries = 0
        self.tunnels_open = 0  # switched connections (WebSocket, other Upgrade) being relayed
        self.access_log_dropped = 0  # lines the access log's queue had no room for
        self.accept_paused = 0  # times max_connections was reached and accepting stopped
        self.queue_timeouts = 0  # requests answered 503 after waiting queue_timeout for a backend
        self.health_changes: dict[tuple[str, str], int] = {}  # (backend, "up"/"down") -> count
        # TLS listener: result (ok, resumed, version, timeout, closed, error) -> handshakes
        self.tls_handshakes: dict[str, int] = {}

    def count_request(self, backend: str, status: int, seconds: float) -> None:
        key = (backend, status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        self.latency.observe(seconds)

    def count_handshake(self, result: str) -> None:
        self.tls_handshakes[result] = self.tls_handshakes.get(result, 0) + 1

    def count_health_change(self, backend: str, up: bool) -> None:
        key = (backend, "up" if up else "down")
        self.health_changes[key] = self.health_changes.get(key, 0) + 1
