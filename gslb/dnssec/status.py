"""What an operator sees of signing: per zone its keys and the earliest expiry of any
signature this node may still be serving (for /v1/status and the metrics)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gslb.dnssec.signer import validity
from gslb.dnssec.wire import ALGORITHM_NAMES
from gslb.plan import Plan

if TYPE_CHECKING:
    from prometheus_client.core import Metric


def earliest_expiry(resigned_at: float) -> int:
    """Every cached answer was signed at or after `resigned_at` (the last time the caches
    were dropped for re-signing), so no served signature expires before this."""
    return validity(resigned_at)[1]


def dnssec_status(plan: Plan, resigned_at: float) -> dict[str, Any]:
    """{zone: {algorithm, keys: [{tag, algorithm, state}], earliest_expiry}}; {} unsigned."""
    out: dict[str, Any] = {}
    expiry = earliest_expiry(resigned_at)
    for name, zone in plan.zones.items():
        spec = next((z.dnssec for z in plan.config.zones if z.name == name), None)
        if zone.signer is None or spec is None:
            continue
        out[name] = {
            "algorithm": spec.algorithm,
            "keys": [
                {"tag": k.tag, "algorithm": ALGORITHM_NAMES[k.algorithm], "state": k.state}
                for k in spec.keys
            ],
            "earliest_expiry": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry)),
            "earliest_expiry_unix": expiry,
        }
    return out


class DnssecMetrics(Collector):
    """gslb_dnssec_key_info{zone,tag,algorithm,state} and
    gslb_dnssec_signature_expiry_timestamp_seconds{zone}, read at scrape time."""

    def __init__(self, plan: Callable[[], Plan], resigned_at: Callable[[], float]) -> None:
        self._plan = plan
        self._resigned_at = resigned_at

    def collect(self) -> Iterator[Metric]:
        status = dnssec_status(self._plan(), self._resigned_at())
        if not status:
            return  # no signed zone: no DNSSEC series at all
        keys = GaugeMetricFamily(
            "gslb_dnssec_key_info",
            "The zone's DNSSEC keys (1 per key), by tag, algorithm and state",
            labels=["zone", "tag", "algorithm", "state"],
        )
        expiry = GaugeMetricFamily(
            "gslb_dnssec_signature_expiry_timestamp_seconds",
            "Unix time when the oldest signature this node may still serve expires",
            labels=["zone"],
        )
        for zone, info in status.items():
            for key in info["keys"]:
                keys.add_metric([zone, str(key["tag"]), key["algorithm"], key["state"]], 1.0)
            expiry.add_metric([zone], float(info["earliest_expiry_unix"]))
        yield keys
        yield expiry
