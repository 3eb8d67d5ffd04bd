"""Compile a validated `Config` into the tables the query path indexes.

Built once per load (gdnsd's lesson: names are bound to tables at load time, the
query path only indexes). Nothing here changes after `compile_plan` returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dnslib import AAAA, QTYPE, RR, A
from dnslib.dns import RD

from gslb.model import Config, Picker, Policy, Region, Service, Soa, Zone
from gslb.netrules import NetworkRules
from gslb.state import endpoint_key

if TYPE_CHECKING:
    from gslb.dnssec.signer import ZoneSigner

TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_AAAA = 28
TYPE_ANY = 255


@dataclass(frozen=True, slots=True)
class RRSet:
    """Records of one owner and type, their rdata already in dnslib form."""

    name: str  # absolute, lower case, trailing dot
    rtype: int
    ttl: int
    rdatas: tuple[RD, ...]


@dataclass(frozen=True, slots=True)
class EndpointPlan:
    region: str
    address: str
    family: int
    weight: int
    key: str  # endpoint_key(region, address): health and admin state use it
    rdata: RD  # A or AAAA, built once
    key_bytes: bytes  # the stable identity hashed by rendezvous selection


@dataclass(frozen=True, slots=True)
class RegionPlan:
    name: str
    lat_rad: float | None
    lon_rad: float | None
    countries: frozenset[str]
    continents: frozenset[str]
    checked: bool  # False: no health block, always taken as healthy
    subdivisions: frozenset[str] = frozenset()
    networks: frozenset[str] = frozenset()  # `serves: networks`, as text


@dataclass(frozen=True, slots=True)
class ServiceRegion:
    """One region's endpoints for one service, split by address family."""

    region: RegionPlan
    weight: int
    v4: tuple[EndpointPlan, ...]
    v6: tuple[EndpointPlan, ...]

    def family(self, family: int) -> tuple[EndpointPlan, ...]:
        return self.v4 if family == 4 else self.v6


@dataclass(frozen=True, slots=True)
class ServicePlan:
    name: str
    zone: str
    ttl: int
    policy: Policy
    select: Picker
    answers: int
    regions: tuple[ServiceRegion, ...]  # the default order
    has_v4: bool
    has_v6: bool
    # The regions with IPv4 and with IPv6 endpoints, in the default order (made once here,
    # as every steered query needs one of them).
    v4_regions: tuple[ServiceRegion, ...] = ()
    v6_regions: tuple[ServiceRegion, ...] = ()

    def regions_with(self, family: int) -> tuple[ServiceRegion, ...]:
        """The regions that have endpoints of `family` (4 or 6)."""
        return self.v4_regions if family == 4 else self.v6_regions


@dataclass(frozen=True, slots=True)
class Node:
    """All at one owner name: static RRsets, a service, or nothing (an empty non-terminal)."""

    name: str
    rrsets: Mapping[int, RRSet]
    service: ServicePlan | None


@dataclass(frozen=True, slots=True)
class ZonePlan:
    name: str
    soa: Soa
    soa_rrset: RRSet
    negative_soa: RRSet  # the SOA as sent with NXDOMAIN/NODATA: TTL min(SOA TTL, minimum)
    nodes: Mapping[str, Node]  # every existing name, empty non-terminals included
    cuts: frozenset[str]  # delegation points below the apex
    signer: ZoneSigner | None = None  # `dnssec:`: signs answers to DO=1 queries


@dataclass(frozen=True, slots=True)
class Plan:
    generation: int
    zones: Mapping[str, ZonePlan]
    zone_depths: tuple[int, ...]  # label counts of zone names, longest first
    services: Mapping[str, ServicePlan]
    regions: Mapping[str, RegionPlan]
    config: Config
    networks: NetworkRules = field(default_factory=NetworkRules)  # every `serves: networks`

    def find_zone(self, qname: str) -> ZonePlan | None:
        """The most specific zone that contains `qname` (absolute, lower case)."""
        labels = qname.rstrip(".").split(".") if qname != "." else []
        for depth in self.zone_depths:
            if depth > len(labels):
                continue
            candidate = ".".join(labels[len(labels) - depth :]) + "." if depth else "."
            zone = self.zones.get(candidate)
            if zone is not None:
                return zone
        return None


def _rdata(record_text: str) -> RD:
    return RR.fromZone(record_text)[0].rdata


def _region_plan(region: Region) -> RegionPlan:
    return RegionPlan(
        name=region.name,
        lat_rad=None if region.lat is None else math.radians(region.lat),
        lon_rad=None if region.lon is None else math.radians(region.lon),
        countries=region.countries,
        continents=region.continents,
        checked=region.health is not None,
        subdivisions=region.subdivisions,
        networks=frozenset(str(n) for n in region.networks),
    )


def _service_plan(
    zone: Zone, service: Service, config: Config, regions: Mapping[str, RegionPlan]
) -> ServicePlan:
    parts: list[ServiceRegion] = []
    for region_name in service.regions:
        region = config.regions[region_name]
        endpoints = region.endpoints.get(service.name, ())
        plans = [
            EndpointPlan(
                region=region_name,
                address=e.address,
                family=e.family,
                weight=e.weight,
                key=endpoint_key(region_name, e.address),
                rdata=A(e.address) if e.family == 4 else AAAA(e.address),
                key_bytes=f"{region_name}/{e.address}".encode(),
            )
            for e in endpoints
        ]
        parts.append(
            ServiceRegion(
                region=regions[region_name],
                weight=service.region_weights.get(region_name, region.weight),
                v4=tuple(p for p in plans if p.family == 4),
                v6=tuple(p for p in plans if p.family == 6),
            )
        )
    return ServicePlan(
        name=service.name,
        zone=zone.name,
        ttl=service.ttl,
        policy=service.policy,
        select=service.select,
        answers=service.answers,
        regions=tuple(parts),
        has_v4=any(p.v4 for p in parts),
        has_v6=any(p.v6 for p in parts),
        v4_regions=tuple(p for p in parts if p.v4),
        v6_regions=tuple(p for p in parts if p.v6),
    )


def _ancestors(name: str, apex: str) -> list[str]:
    """`name` and every name between it and the apex (exclusive of names above the apex)."""
    out = []
    current = name
    while current != apex and current.endswith("." + apex):
        out.append(current)
        current = current.split(".", 1)[1]
    out.append(apex)
    return out


def _zone_plan(zone: Zone, config: Config, regions: Mapping[str, RegionPlan]) -> ZonePlan:
    grouped: dict[str, dict[int, list[tuple[int, RD]]]] = {}
    for record in zone.records:
        rtype = getattr(QTYPE, record.rtype)
        rd = _rdata(f"{record.name} {record.ttl} IN {record.rtype} {record.rdata}")
        grouped.setdefault(record.name, {}).setdefault(rtype, []).append((record.ttl, rd))
    names: set[str] = set()
    for owner in list(grouped) + list(zone.services):
        names.update(_ancestors(owner, zone.name))
    nodes: dict[str, Node] = {}
    for name in names:
        rrsets = {
            rtype: RRSet(name, rtype, min(ttl for ttl, _ in items), tuple(rd for _, rd in items))
            for rtype, items in grouped.get(name, {}).items()
        }
        service = zone.services.get(name)
        nodes[name] = Node(
            name=name,
            rrsets=rrsets,
            service=None if service is None else _service_plan(zone, service, config, regions),
        )
    soa = zone.soa
    negative_ttl = min(soa.ttl, soa.minimum)  # RFC 2308 §5 (SOA) and RFC 9077 (NSEC)
    signer = None
    if zone.dnssec is not None:
        # Imported here: the signer reads plan values, so it cannot be imported above.
        from gslb.dnssec.signer import ZoneSigner, key_records

        apex = nodes[zone.name]
        keys = zone.dnssec.keys
        published = key_records(zone.name, keys, apex.rrsets[TYPE_NS].ttl)
        nodes[zone.name] = Node(apex.name, {**apex.rrsets, **published.by_type()}, None)
        signer = ZoneSigner(zone.name, tuple(k for k in keys if k.signs), negative_ttl)
    soa_rrset = nodes[zone.name].rrsets[TYPE_SOA]
    cuts = frozenset(
        name for name, node in nodes.items() if name != zone.name and TYPE_NS in node.rrsets
    )
    return ZonePlan(
        name=zone.name,
        soa=soa,
        soa_rrset=soa_rrset,
        negative_soa=RRSet(zone.name, TYPE_SOA, negative_ttl, soa_rrset.rdatas),
        nodes=nodes,
        cuts=cuts,
        signer=signer,
    )


def compile_plan(config: Config, generation: int = 1) -> Plan:
    regions = {name: _region_plan(region) for name, region in config.regions.items()}
    zones = {zone.name: _zone_plan(zone, config, regions) for zone in config.zones}
    services = {
        name: node.service
        for zone in zones.values()
        for name, node in zone.nodes.items()
        if node.service is not None
    }
    depths = sorted({0 if z == "." else z.rstrip(".").count(".") + 1 for z in zones}, reverse=True)
    return Plan(
        generation=generation,
        zones=zones,
        zone_depths=tuple(depths),
        services=services,
        regions=regions,
        config=config,
        networks=NetworkRules.build(n for r in config.regions.values() for n in r.networks),
    )
