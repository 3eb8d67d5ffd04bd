"""The cluster's Prometheus metrics, read from the store at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from gslb.cluster.store import ClusterStore

# Seconds from a commit on one node to its application on this one (loopback: ms).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ClusterMetrics(Collector):
    def __init__(self, store: Callable[[], ClusterStore | None]) -> None:
        self._store = store
        self._counts = [0] * (len(BUCKETS) + 1)
        self._sum = 0.0

    def observe_propagation(self, seconds: float) -> None:
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self._counts[i] += 1
                break
        else:
            self._counts[-1] += 1
        self._sum += seconds

    def collect(self) -> Iterator[Metric]:
        store = self._store()
        if store is None:
            return
        connected = GaugeMetricFamily(
            "gslb_cluster_connected", "1 while this node holds a session with etcd"
        )
        connected.add_metric([], 1.0 if store.connected else 0.0)
        yield connected
        since = GaugeMetricFamily(
            "gslb_cluster_connected_since_seconds",
            "Unix time when gslb_cluster_connected last changed",
        )
        since.add_metric([], store.since)
        yield since
        nodes = GaugeMetricFamily(
            "gslb_cluster_nodes", "Nodes known to this one, alive or dead", labels=["state"]
        )
        alive = sum(1 for info in store.nodes.values() if info.alive)
        nodes.add_metric(["alive"], float(alive))
        nodes.add_metric(["dead"], float(len(store.nodes) - alive))
        yield nodes
        histogram = HistogramMetricFamily(
            "gslb_cluster_propagation_seconds",
            "From an admin change committed on another node to its application here",
        )
        cumulative, buckets = 0, []
        for bound, count in zip((*BUCKETS, float("inf")), self._counts, strict=True):
            cumulative += count
            buckets.append((str(bound) if bound != float("inf") else "+Inf", float(cumulative)))
        histogram.add_metric([], buckets, self._sum)
        yield histogram
