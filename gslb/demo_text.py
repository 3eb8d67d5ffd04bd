"""What `gslb demo` prints: the topology and commands to try, each runnable as printed."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from gslb.demo_layout import DemoLayout

# One client subnet per continent, all placed by the demo GeoIP database (geodata/).
CLIENTS: tuple[tuple[str, str], ...] = (
    ("Europe", "81.2.69.0/24"),
    ("North America", "8.8.8.0/24"),
    ("Oceania", "1.1.1.0/24"),
)
FAILOVER_CLIENT = CLIENTS[0][1]


@dataclass(frozen=True, slots=True)
class Expected:
    """Which region answers each client subnet, and where Europe goes when its region is off."""

    regions: Mapping[str, str | None]  # client subnet -> region
    failover_to: str | None  # region for FAILOVER_CLIENT once its region is disabled


def dig(layout: DemoLayout, subnet: str) -> str:
    return f"dig @{layout.dns.host} -p {layout.dns.port} +short {layout.service} +subnet={subnet}"


def _where(layout: DemoLayout, region: str | None) -> str:
    if region is None:
        return "no answer"
    return f"{region} ({layout.region(region).address})"


def _post(layout: DemoLayout, token: str, path: str) -> str:
    header = shlex.quote(f"Authorization: Bearer {token}")
    return f"curl -s -X POST -H {header} http://{layout.api}{path}"


def instructions(
    layout: DemoLayout, token: str, token_generated: bool, expected: Expected, workdir: str
) -> str:
    lines = [
        f"gslb demo is up: DNS, admin API and {len(layout.regions)} regions, each with a "
        "proxy and its backends, all on loopback.",
        "",
        f"  DNS          {layout.dns} (UDP and TCP), answering for {layout.service}",
        f"  admin API    http://{layout.api}/   (the status page)",
        f"  API token    {token}   "
        + (
            f"(generated for this run; set {layout.token_env} to choose one)"
            if token_generated
            else f"(from {layout.token_env})"
        ),
    ]
    width = max(len(r.name) for r in layout.regions)
    for r in layout.regions:
        backends = ", ".join(f"{b.name} {b.listen}" for b in r.backends)
        lines.append(
            f"  {r.name:<{width}}  proxy http://{r.proxy}/  admin http://{r.admin}/status"
            f"  backends {backends}"
        )
    lines += [
        f"  config and logs in {workdir} (removed when the demo stops)",
        "",
        "Try it from another terminal:",
        "",
        "  # Which region answers? One client subnet per continent (EDNS Client Subnet):",
    ]
    for label, subnet in CLIENTS:
        where = _where(layout, expected.regions.get(subnet))
        lines.append(f"  {dig(layout, subnet)}   # {label}: {where}")
    europe = expected.regions.get(FAILOVER_CLIENT)
    port = layout.regions[0].proxy.port
    lines += [
        "",
        "  # A request through the proxy that DNS chose for that European client:",
        f"  curl -s http://$({dig(layout, FAILOVER_CLIENT)} | head -n1):{port}/",
    ]
    if europe is not None:
        address = layout.region(europe).address
        lines += [
            "  # ... or to a region's proxy by name, as a browser would after the DNS answer:",
            f"  curl -s --resolve {layout.service}:{port}:{address} "
            f"http://{layout.service}:{port}/",
            "",
            f"  # Fail {europe} over: its clients move to the next region. Then bring it back:",
            "  " + _post(layout, token, f"/v1/regions/{europe}/disable"),
            f"  {dig(layout, FAILOVER_CLIENT)}   # now " + _where(layout, expected.failover_to),
            "  " + _post(layout, token, f"/v1/regions/{europe}/enable"),
        ]
    watched = layout.region(europe) if europe is not None else layout.regions[0]
    lines += [
        "",
        "  # Why that answer, step by step:",
        f"  curl -s 'http://{layout.api}/v1/explain?name={layout.service}&client={FAILOVER_CLIENT}'",
        "",
        "  # Watch it: status as JSON, answers per region (DNS metrics), requests per backend:",
        f"  curl -s http://{layout.api}/v1/status",
        f"  curl -s http://{layout.api}/metrics | grep ^gslb_dns_answers",
        f"  curl -s http://{watched.admin}/metrics | grep ^gslb_proxy_requests",
        "",
        f"Status page: http://{layout.api}/ (open it in a browser).",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)
