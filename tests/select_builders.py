"""Small builders of model values and compiled plans for the selection tests.

They build `Config` values directly (no YAML), so property tests can compile many
plans quickly; the YAML path is covered by the tests that load config directories.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence

from gslb.geo import Location
from gslb.model import (
    CheckSpec,
    Config,
    Endpoint,
    Picker,
    Policy,
    Record,
    Region,
    ServerSettings,
    Service,
    Soa,
    Zone,
    frozen_map,
)
from gslb.plan import Plan, compile_plan
from gslb.select import Client
from gslb.state import AdminState, State, endpoint_key

ZONE = "test.example."
SOA = Soa("ns1.test.example.", "hostmaster.test.example.", 1, 3600, 600, 604800, 60, 300)

EndpointSpec = str | tuple[str, int]


def fqdn(label: str) -> str:
    return f"{label}.{ZONE}"


def region(
    name: str,
    endpoints: Mapping[str, Sequence[EndpointSpec]],
    *,
    lat: float | None = None,
    lon: float | None = None,
    countries: Iterable[str] = (),
    continents: Iterable[str] = (),
    weight: int = 1,
    checked: bool = True,
) -> Region:
    """A region; `endpoints` maps a service label to addresses or (address, weight)."""
    by_service: dict[str, tuple[Endpoint, ...]] = {}
    for label, specs in endpoints.items():
        items = []
        for spec in specs:
            address, w = (spec, 1) if isinstance(spec, str) else spec
            parsed = ipaddress.ip_address(address)
            items.append(Endpoint(str(parsed), 4 if parsed.version == 4 else 6, w))
        by_service[fqdn(label)] = tuple(items)
    return Region(
        name=name,
        file=f"regions/{name}.yaml",
        lat=lat,
        lon=lon,
        countries=frozenset(countries),
        continents=frozenset(continents),
        weight=weight,
        health=CheckSpec() if checked else None,
        endpoints=frozen_map(by_service),
    )


def service(
    label: str,
    regions: Sequence[str],
    *,
    policy: Policy = "geo",
    select: Picker = "first",
    answers: int = 8,
    weights: Mapping[str, int] | None = None,
    ttl: int = 30,
) -> Service:
    return Service(
        name=fqdn(label),
        ttl=ttl,
        policy=policy,
        select=select,
        answers=answers,
        regions=tuple(regions),
        region_weights=frozen_map(weights or {}),
    )


def make_plan(
    services: Sequence[Service],
    regions: Sequence[Region],
    static: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> Plan:
    """A plan of one zone `test.example.` with `services` and static records by label."""
    records = [
        Record(ZONE, "SOA", 300, f"{SOA.mname} {SOA.rname} 1 3600 600 604800 60"),
        Record(ZONE, "NS", 300, SOA.mname),
        Record(SOA.mname, "A", 300, "192.0.2.53"),
    ]
    for label, items in (static or {}).items():
        records += [Record(fqdn(label), rtype, 300, rdata) for rtype, rdata in items]
    zone = Zone(
        name=ZONE,
        file="test.example.yaml",
        ttl=300,
        soa=SOA,
        ns=(SOA.mname,),
        records=tuple(records),
        services=frozen_map({s.name: s for s in services}),
    )
    config = Config(
        directory="/nonexistent",
        settings=ServerSettings(),
        zones=(zone,),
        regions=frozen_map({r.name: r for r in regions}),
    )
    return compile_plan(config)


def client(
    address: str | None,
    source: int | None = None,
    *,
    country: str | None = None,
    continent: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
    geo_prefix: int | None = None,
) -> Client:
    """A client; a location when any of country/continent/lat is given."""
    ip = None if address is None else ipaddress.ip_address(address)
    placed = country is not None or continent is not None or lat is not None
    full = source if source is not None else (ip.max_prefixlen if ip is not None else 0)
    prefix = geo_prefix if geo_prefix is not None else (24 if ip is None or ip.version == 4 else 48)
    location = (
        Location(country, continent, lat, lon, prefix, f"{address}/{prefix}") if placed else None
    )
    return Client(ip, source, location, prefix if placed else full)


def state(
    *,
    down: Iterable[tuple[str, str]] = (),
    disabled: Iterable[tuple[str, str]] = (),
    regions: Mapping[str, str] | None = None,
) -> State:
    """A state with endpoints (region, address) measured down or admin-disabled."""
    admin = AdminState()
    for name, value in (regions or {}).items():
        admin = admin.with_region(name, value)  # type: ignore[arg-type]
    for r, a in disabled:
        admin = admin.with_endpoint(endpoint_key(r, a), enabled=False)
    return State(down=frozenset(endpoint_key(r, a) for r, a in down), admin=admin)
