"""What `gslb demo` runs, as values: addresses, ports and the generated config files.

Pure: a loaded `Config` in, a `DemoLayout` out. The demo keeps the shipped zone
and the regions' location and mapping, and replaces every region's endpoints by
that region's proxy. A records carry no port, so each region's proxy listens on
the same port on its own loopback address (127.0.N.1); its backends sit beside
it on 127.0.N.11, 127.0.N.12, ... The zone files are copied unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from gslb.model import Config, HostPort, Region, frozen_map

MIN_BACKENDS = 2
MAX_REGIONS = 250

# The demo's health checks are quick so that a failure shows within seconds.
DNS_CHECK = {"type": "http", "path": "/health", "interval": "1s", "timeout": "500ms"}
CHECK_COUNTS = {"rise": 1, "fall": 2}
PROXY_DRAIN = "2s"


@dataclass(frozen=True, slots=True)
class DemoPorts:
    dns: int = 5353
    api: int = 8053
    proxy: int = 8080
    proxy_admin: int = 8081
    backend: int = 8000


@dataclass(frozen=True, slots=True)
class DemoBackend:
    region: str
    name: str
    listen: HostPort
    weight: int = 1

    @property
    def url(self) -> str:
        return f"http://{self.listen}"


@dataclass(frozen=True, slots=True)
class DemoRegion:
    name: str
    address: str  # the proxy's loopback address: the A record DNS answers with
    proxy: HostPort
    admin: HostPort
    backends: tuple[DemoBackend, ...]


@dataclass(frozen=True, slots=True)
class DemoLayout:
    dns: HostPort
    api: HostPort
    token_env: str
    service: str  # the steered name the printed examples ask for, without the final dot
    regions: tuple[DemoRegion, ...]
    files: Mapping[str, str]  # path relative to the generated config dir -> YAML text
    zone_files: tuple[str, ...]  # the shipped zone files, copied unchanged

    def region(self, name: str) -> DemoRegion:
        return next(r for r in self.regions if r.name == name)

    def listeners(self) -> tuple[tuple[str, HostPort, str], ...]:
        """(what, address, protocol) for every socket the demo binds; protocol tcp or udp."""
        out: list[tuple[str, HostPort, str]] = [
            ("DNS", self.dns, "udp"),
            ("DNS", self.dns, "tcp"),
            ("admin API", self.api, "tcp"),
        ]
        for region in self.regions:
            out.append((f"{region.name} proxy", region.proxy, "tcp"))
            out.append((f"{region.name} proxy admin", region.admin, "tcp"))
            for backend in region.backends:
                out.append((f"{region.name} backend {backend.name}", backend.listen, "tcp"))
        return tuple(out)


def region_address(index: int) -> str:
    return f"127.0.{index + 1}.1"


def _backends(region: Region, index: int, port: int) -> tuple[DemoBackend, ...]:
    shipped = list(region.proxy.backends) if region.proxy else []
    names = [(b.name, b.weight) for b in shipped]
    while len(names) < MIN_BACKENDS:
        names.append((f"{region.name}-{len(names) + 1}", 1))
    return tuple(
        DemoBackend(region.name, name, HostPort(f"127.0.{index + 1}.{11 + i}", port), weight)
        for i, (name, weight) in enumerate(names)
    )


def _dump(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=None, width=100)


def _region_file(region: Region, demo: DemoRegion) -> str:
    document: dict[str, Any] = {"region": region.name}
    if region.lat is not None and region.lon is not None:
        document["location"] = {"lat": region.lat, "lon": region.lon}
    serves: dict[str, list[str]] = {}
    if region.continents:
        serves["continents"] = sorted(region.continents)
    if region.countries:
        serves["countries"] = sorted(region.countries)
    if serves:
        document["serves"] = serves
    document["weight"] = region.weight
    document["health"] = {**DNS_CHECK, "port": demo.admin.port, **CHECK_COUNTS}
    document["services"] = {service: [demo.address] for service in region.endpoints}
    method = region.proxy.method if region.proxy else "round_robin"
    document["proxy"] = {
        "listen": str(demo.proxy),
        "admin": str(demo.admin),
        "method": method,
        "backends": [{"name": b.name, "url": b.url, "weight": b.weight} for b in demo.backends],
        "health": {**DNS_CHECK, **CHECK_COUNTS},
        "drain_timeout": PROXY_DRAIN,
    }
    return _dump(document)


def _settings_file(
    config: Config, dns: HostPort, api: HostPort, geoip: str | None, state: str
) -> str:
    settings = config.settings
    document: dict[str, Any] = {
        "dns": {"listen": [str(dns)], "max_udp_size": settings.max_udp_size},
        "api": {"listen": str(api), "token_env": settings.token_env},
    }
    if geoip is not None:
        document["geoip"] = {"database": geoip}
    document["state"] = {"path": state}
    return _dump(document)


def steered_name(config: Config) -> str:
    """The first geo-steered service (else the first service), for the printed examples."""
    services = [s for zone in config.zones for s in zone.services.values()]
    if not services:
        raise ValueError("the config has no services: nothing for the demo to steer")
    geo = [s for s in services if s.policy == "geo"]
    return (geo or services)[0].name.rstrip(".")


def plan_demo(
    config: Config, ports: DemoPorts, *, geoip: str | None, state_path: str
) -> DemoLayout:
    """The demo's topology and config files, derived from `config` (the shipped zones/)."""
    names = sorted(config.regions)
    if not names:
        raise ValueError("the config has no regions: nothing for the demo to run")
    if len(names) > MAX_REGIONS:
        raise ValueError(f"the demo runs at most {MAX_REGIONS} regions, not {len(names)}")
    regions = []
    files: dict[str, str] = {}
    for index, name in enumerate(names):
        region = config.regions[name]
        address = region_address(index)
        demo = DemoRegion(
            name=name,
            address=address,
            proxy=HostPort(address, ports.proxy),
            admin=HostPort(address, ports.proxy_admin),
            backends=_backends(region, index, ports.backend),
        )
        regions.append(demo)
        files[f"regions/{name}.yaml"] = _region_file(region, demo)
    dns = HostPort("127.0.0.1", ports.dns)
    api = HostPort("127.0.0.1", ports.api)
    files["gslb.yaml"] = _settings_file(config, dns, api, geoip, state_path)
    return DemoLayout(
        dns=dns,
        api=api,
        token_env=config.settings.token_env,
        service=steered_name(config),
        regions=tuple(regions),
        files=frozen_map(files),
        zone_files=tuple(zone.file for zone in config.zones),
    )
