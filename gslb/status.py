"""What `GET /v1/status` and the status page show: pure functions over one view."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gslb.config.names import plain
from gslb.health import Health
from gslb.metrics import DnsStats
from gslb.rates import WindowCounts
from gslb.state import State, View, endpoint_key, region_state

Recent = Sequence[WindowCounts[tuple[str, str]]]  # (service, region) -> answers, per window


def services_failing_open(view: View, state: State | None = None) -> list[str]:
    """Services (and families) for which no region is usable: they answer fail-open."""
    state = state or view.state
    out = []
    for name, service in sorted(view.plan.services.items()):
        for family, present in ((4, service.has_v4), (6, service.has_v6)):
            if not present:
                continue
            usable = any(
                state.region_usable(entry.region.name)
                and any(state.endpoint_usable(e.key) for e in entry.family(family))
                for entry in service.regions
            )
            if not usable:
                out.append(f"{plain(name)} IPv{family}")
    return out


def _health_text(key: str, checked: bool, health: Mapping[str, Health]) -> tuple[str, str]:
    if not checked:
        return "unchecked", "no health check: taken as healthy"
    found = health.get(key)
    if found is None or not found.confirmed:
        return "pending", "no result yet: taken as healthy"
    return ("up" if found.up else "down"), found.last_detail


def counted(answers: int, total: int) -> dict[str, Any]:
    """`answers` of `total`, and their share (0.0 when there are none)."""
    return {"answers": answers, "share": answers / total if total else 0.0}


def by_region(counts: Mapping[tuple[str, str], int]) -> dict[str, int]:
    """(service, region) counts pooled over services."""
    out: dict[str, int] = {}
    for (_, region), n in counts.items():
        out[region] = out.get(region, 0) + n
    return out


def service_shares(
    view: View, since_start: Mapping[tuple[str, str], int], recent: Recent
) -> list[dict[str, Any]]:
    """Per service: its answers and each region's share, since start and in each window.

    A service's regions are those of its `regions:` list, in that order, then any other
    region it answered with (before a reload); a service gone from the config is listed
    (policy "") while it has counts since start."""
    services = view.plan.services
    names = sorted(set(services) | {service for service, _ in since_start})
    out = []
    for name in names:
        plan = services.get(name)
        regions = [] if plan is None else [entry.region.name for entry in plan.regions]
        regions += sorted({r for s, r in since_start if s == name} - set(regions))
        total = sum(since_start.get((name, r), 0) for r in regions)
        totals = {
            w.window.name: sum(n for (s, _), n in w.counts.items() if s == name) for w in recent
        }
        item: dict[str, Any] = {
            "name": plain(name),
            "policy": "" if plan is None else plan.policy,
            "answers": total,
            **{w: {"answers": n} for w, n in totals.items()},
            "regions": [
                {
                    "name": region,
                    **counted(since_start.get((name, region), 0), total),
                    **{
                        w.window.name: counted(
                            w.counts.get((name, region), 0), totals[w.window.name]
                        )
                        for w in recent
                    },
                }
                for region in regions
            ],
        }
        out.append(item)
    return out


def build_status(
    view: View,
    health: Mapping[str, Health],
    stats: DnsStats,
    audit: Sequence[Mapping[str, Any]],
    recent: Recent = (),
) -> dict[str, Any]:
    """`recent`: the steered answers of the last minute and 5 minutes (gslb.rates)."""
    config = view.plan.config
    state = view.state
    stats.fold()
    region_answers = by_region(stats.answers)
    recent_regions = [(w.window.name, by_region(w.counts)) for w in recent]
    recent_totals = {name: sum(counts.values()) for name, counts in recent_regions}
    endpoint_answers: dict[tuple[str, str], int] = {}
    for (_, where, address), count in stats.endpoint_answers.items():
        endpoint_answers[(where, address)] = endpoint_answers.get((where, address), 0) + count
    total_answers = sum(region_answers.values())
    regions = []
    for name, region in sorted(config.regions.items()):
        endpoints: dict[str, dict[str, Any]] = {}
        for service, members in region.endpoints.items():
            for endpoint in members:
                key = endpoint_key(name, endpoint.address)
                item = endpoints.get(endpoint.address)
                if item is None:
                    checked = region.health is not None or endpoint.health is not None
                    measured, detail = _health_text(key, checked, health)
                    answered = endpoint_answers.get((name, endpoint.address), 0)
                    item = endpoints[endpoint.address] = {
                        "address": endpoint.address,
                        "services": [],
                        "health": measured,
                        "detail": detail,
                        "admin": state.admin.endpoint(key),
                        "usable": state.endpoint_usable(key),
                        "answers": answered,
                    }
                item["services"].append(plain(service))
        admin = state.admin.region(name)
        listed = list(endpoints.values())
        usable = admin == "enabled" and any(e["usable"] for e in listed)
        answers = region_answers.get(name, 0)
        regions.append(
            {
                "name": name,
                "location": {"lat": region.lat, "lon": region.lon},
                "serves": {
                    "continents": sorted(region.continents),
                    "countries": sorted(region.countries),
                    "subdivisions": sorted(region.subdivisions),
                    "networks": [str(n) for n in region.networks],
                },
                "admin": admin,
                "state": region_state(admin, listed),
                "usable": usable,
                "checked": region.health is not None,
                **counted(answers, total_answers),  # since the process started
                **{
                    window: counted(counts.get(name, 0), recent_totals[window])
                    for window, counts in recent_regions
                },
                "endpoints": listed,
            }
        )
    queries = sum(stats.queries.values())
    return {
        "generation": view.plan.generation,
        "state_version": state.version,
        "regions": regions,
        "services": service_shares(view, stats.answers, recent),
        "windows": {
            w.window.name: {
                "seconds": w.window.seconds,
                "covered_seconds": round(w.covered, 3),
                "steered_answers": recent_totals[w.window.name],
            }
            for w in recent
        },
        "fail_open_now": services_failing_open(view),
        "counts": {
            "queries": queries,
            "steered_answers": total_answers,
            "fail_open_answers": sum(stats.fail_open.values()),
        },
        "latency_seconds": {
            "p50": stats.latency.estimate(0.50),
            "p95": stats.latency.estimate(0.95),
            "p99": stats.latency.estimate(0.99),
        },
        "recent_actions": list(audit),
    }
