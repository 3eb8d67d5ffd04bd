"""A parsed region file → `Region`: location, whom it serves, health check,
endpoints per service, and its proxy tier.

Whether each service exists is only known once every zone is read; the draft
keeps the lines needed to say so (see `gslb.config.links`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gslb.certificates import CertificateError, check_ca, check_pair
from gslb.config import names
from gslb.config.kinds import Ctx, Marked
from gslb.config.schema import PROXY
from gslb.config.tables import Parsed, Table
from gslb.model import (
    AccessLogSpec,
    Backend,
    CheckSpec,
    Endpoint,
    ProxyRoute,
    ProxySpec,
    ProxyTlsSpec,
    Region,
    TlsCertificate,
    frozen_map,
)


@dataclass(frozen=True, slots=True)
class RegionDraft:
    region: Region
    line: int  # the line of `region:`
    service_lines: Mapping[str, int]  # service name -> the line of its key


def build_region(parsed: Parsed, file: str, ctx: Ctx) -> RegionDraft | None:
    """The region, or None when its name is unusable (problems are in ctx)."""
    name: str | None = parsed["region"]
    if name is None:
        return None
    location: Parsed | None = parsed["location"]
    serves: Parsed | None = parsed["serves"]
    check: Parsed | None = parsed["health"]
    health = None if check is None else check_spec(check, CheckSpec(), ctx)
    endpoints, lines = _endpoints(parsed, health, ctx)
    region = Region(
        name=name,
        file=file,
        lat=None if location is None else location["lat"],
        lon=None if location is None else location["lon"],
        countries=frozenset(c.upper() for c in serves["countries"]) if serves else frozenset(),
        networks=tuple(serves["networks"]) if serves else (),
        subdivisions=frozenset(s.upper() for s in serves["subdivisions"])
        if serves
        else frozenset(),
        continents=frozenset(serves["continents"]) if serves else frozenset(),
        weight=parsed["weight"],
        health=health,
        endpoints=frozen_map(endpoints),
        proxy=None if parsed["proxy"] is None else _proxy(parsed["proxy"], ctx),
    )
    return RegionDraft(region, parsed.line_of("region"), frozen_map(lines))


def check_spec(parsed: Parsed, base: CheckSpec, ctx: Ctx) -> CheckSpec:
    """The keys written in `parsed` over `base`.

    A timeout longer than the interval is an error when both are written here;
    when the timeout only comes from a default it is lowered to the interval, so
    `interval: 500ms` alone works.
    """
    written = {("kind" if key == "type" else key): value for key, value in parsed.written().items()}
    spec = dataclasses.replace(base, **{k: v for k, v in written.items() if v is not None})
    if spec.timeout > spec.interval:
        if "timeout" in written:
            ctx.report.add(
                parsed.line_of("timeout"),
                f"timeout {spec.timeout:g}s is longer than the interval {spec.interval:g}s",
            )
        spec = dataclasses.replace(spec, timeout=spec.interval)
    return spec


def _endpoints(
    parsed: Parsed, health: CheckSpec | None, ctx: Ctx
) -> tuple[dict[str, tuple[Endpoint, ...]], dict[str, int]]:
    endpoints: dict[str, tuple[Endpoint, ...]] = {}
    lines: dict[str, int] = {}
    for key, items in parsed["services"]:
        try:
            service = names.absolute(key.value)
        except names.BadName as exc:
            ctx.report.add(key.line, f"bad service name: {exc}")
            continue
        if service in lines:
            ctx.report.add(
                key.line, f"service {service} is already listed at line {lines[service]}"
            )
            continue
        lines[service] = key.line
        endpoints[service] = _service_endpoints(service, items, health, ctx)
    return endpoints, lines


def _service_endpoints(
    service: str, items: tuple[Marked[Any], ...], health: CheckSpec | None, ctx: Ctx
) -> tuple[Endpoint, ...]:
    out: list[Endpoint] = []
    first: dict[str, int] = {}
    for item in items:
        endpoint = _endpoint(item.value, health, ctx)
        if endpoint is None:
            continue
        if endpoint.address in first:
            ctx.report.add(
                item.line,
                f"duplicate address {endpoint.address} for {service}"
                f" (first at line {first[endpoint.address]})",
            )
            continue
        first[endpoint.address] = item.line
        out.append(endpoint)
    return tuple(out)


def _endpoint(value: str | Parsed, health: CheckSpec | None, ctx: Ctx) -> Endpoint | None:
    if isinstance(value, str):
        return Endpoint(value, _family(value))
    address: str | None = value["address"]
    if address is None:
        return None
    check: Parsed | None = value["health"]
    return Endpoint(
        address=address,
        family=_family(address),
        weight=value["weight"],
        health=None if check is None else check_spec(check, health or CheckSpec(), ctx),
    )


def _family(address: str) -> Literal[4, 6]:
    return 4 if ipaddress.ip_address(address).version == 4 else 6


def _proxy(parsed: Parsed, ctx: Ctx) -> ProxySpec | None:
    listen = parsed["listen"]
    backends = _backends(parsed["backends"] or (), _ca(parsed, "ca", ctx), ctx)
    check: Parsed | None = parsed["health"]
    health = None if check is None else check_spec(check, CheckSpec(), ctx)
    if health is not None and health.kind == "https":
        ctx.report.add(
            check.line_of("type") if check else parsed.line,
            "proxy health checks use http or tcp: an https:// backend is checked over TLS",
        )
    routes = _routes(parsed["routes"] or (), {b.name for b in backends}, ctx)
    tls_block: Parsed | None = parsed["tls"]
    tls = None if tls_block is None else _tls(tls_block, ctx)
    if tls_block is not None and tls is not None and tls.listen == listen and listen.port:
        ctx.report.add(tls_block.line_of("listen"), f"tls listens on {listen}, as listen does")
        return None
    if listen is None or not backends or (tls_block is not None and tls is None):
        return None
    timeouts = _section(parsed, "timeouts")
    limits = _section(parsed, "limits")
    passive = _section(parsed, "passive")
    sticky = _section(parsed, "sticky")
    logged: Parsed | None = parsed["access_log"]
    access_log = None if logged is None else AccessLogSpec(logged["path"], logged["format"])
    return ProxySpec(
        listen=listen,
        admin=parsed["admin"],
        method=parsed["method"],
        backends=backends,
        health=health,
        drain_timeout=parsed["drain_timeout"],
        drain_grace=parsed["drain_grace"],
        drain_close_spread=parsed["drain_close_spread"],
        connect_timeout=timeouts["connect"],
        read_timeout=timeouts["read"],
        total_timeout=timeouts["total"],
        client_timeout=timeouts["client"],
        idle_timeout=timeouts["idle"],
        tunnel_idle_timeout=parsed["tunnel_idle_timeout"],
        max_header_bytes=limits["max_header_bytes"],
        max_headers=limits["max_headers"],
        fail_threshold=passive["fail_threshold"],
        cooldown=passive["cooldown"],
        panic_threshold=parsed["panic_threshold"],
        sticky_cookie=sticky["cookie"],
        access_log=access_log,
        routes=routes,
        max_connections=parsed["max_connections"],
        queue_timeout=parsed["queue_timeout"],
        tls=tls,
    )


def _tls(parsed: Parsed, ctx: Ctx) -> ProxyTlsSpec | None:
    """The HTTPS listener, each certificate loaded as the proxy will (so that a bad file
    is refused here, and a reload with one keeps the old config), or None after a problem."""
    certificates: list[TlsCertificate] = []
    for item in parsed["certificates"] or ():
        cert, key = item["cert"], item["key"]
        if cert is None or key is None:
            continue
        try:
            check_pair(cert, key)
        except CertificateError as e:
            ctx.report.add(item.line, f"tls certificate: {e}")
            continue
        certificates.append(TlsCertificate(cert, key))
    if (
        parsed["listen"] is None
        or not parsed.ok
        or len(certificates) != len(parsed["certificates"] or ())
    ):
        return None
    return ProxyTlsSpec(
        listen=parsed["listen"],
        certificates=tuple(certificates),
        min_version=parsed["min_version"],
        handshake_timeout=parsed["handshake_timeout"],
        shutdown_timeout=parsed["shutdown_timeout"],
    )


def _ca(parsed: Parsed, key: str, ctx: Ctx) -> str | None:
    """The CA file written at `key`, checked to be usable (None when absent or bad)."""
    ca: str | None = parsed[key]
    if ca is None:
        return None
    try:
        check_ca(ca)
    except CertificateError as e:
        ctx.report.add(parsed.line_of(key), f"{key}: {e}")
        return None
    return ca


def _section(parsed: Parsed, key: str) -> Mapping[str, Any]:
    """A sub-table's values, or its table's defaults when it was not written."""
    value: Parsed | None = parsed[key]
    if value is not None:
        return value.values
    table = PROXY.by_key[key].kind
    assert isinstance(table, Table)
    return {f.key: f.default for f in table.fields}


def _backends(items: tuple[Parsed, ...], ca: str | None, ctx: Ctx) -> tuple[Backend, ...]:
    out: list[Backend] = []
    first: dict[str, int] = {}
    for item in items:
        target = item["url"]
        if target is None:
            continue
        url, host_port = target
        name = item["name"] or str(host_port)
        if name in first:
            ctx.report.add(
                item.line_of("name"),
                f"duplicate backend name {name!r} (first at line {first[name]})",
            )
            continue
        first[name] = item.line
        out.append(
            Backend(
                name,
                url,
                host_port.host,
                host_port.port,
                item["weight"],
                item["max_connections"],
                _backend_ca(item, url, ca, ctx),
            )
        )
    return tuple(out)


def _backend_ca(item: Parsed, url: str, default: str | None, ctx: Ctx) -> str | None:
    """An https:// backend's CA: its own `ca:`, else the proxy's (None: the system's)."""
    if not url.startswith("https://"):
        if item.given("ca"):
            ctx.report.add(item.line_of("ca"), "ca: only an https:// backend is verified")
        return None
    return _ca(item, "ca", ctx) or default


def _routes(items: tuple[Parsed, ...], names: set[str], ctx: Ctx) -> tuple[ProxyRoute, ...]:
    out: list[ProxyRoute] = []
    for item in items:
        members: list[str] = []
        for marked in item["backends"] or ():
            name = marked.value
            if name not in names:
                known = ", ".join(sorted(names)) or "none"
                ctx.report.add(
                    marked.line, f"route names unknown backend {name!r} (known: {known})"
                )
            elif name not in members:
                members.append(name)
        if members:
            out.append(ProxyRoute(item["host"], item["path"], tuple(members)))
    return tuple(out)
