"""Cross-file rules: unique zone and region names, services and regions that name
each other, and every service reachable through at least one endpoint.

Runs after every file is read; each problem is reported in the file (and at the
line) where the bad reference is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from gslb.config.kinds import suggest
from gslb.config.problems import Report
from gslb.config.regions import RegionDraft
from gslb.config.zones import ServiceDraft, ZoneDraft
from gslb.model import Region, Service, Zone, frozen_map

ReportFor = Callable[[str], Report]


def link(
    zone_drafts: list[ZoneDraft],
    region_drafts: list[RegionDraft],
    report_for: ReportFor,
    regions_clean: bool,
    zones_named: bool,
    regions_named: bool = True,
) -> tuple[tuple[Zone, ...], Mapping[str, Region]]:
    """Finished zones (services resolved) and regions by name.

    Every problem is reported in one round, except those that would only echo another:
    a region file whose region has no name (`regions_named` false) may be the region a
    zone names, so "undefined region" waits for it; a broken region file may have lost
    endpoints (`regions_clean` false), so "no endpoints" waits; a zone file without a
    name (`zones_named` false) may define any service, so "no zone defines" waits. (A
    service entry a zone file drops, for a bad name, is reported there; a region file
    naming it is told too, rightly: no zone defines it.)
    """
    regions = _unique_regions(region_drafts, report_for)
    zones = _unique_zones(zone_drafts, report_for)
    services = _service_index(zones, report_for)
    if zones_named:
        _check_region_services(regions, services, report_for)
    finished = []
    for draft in zones:
        resolved = {}
        for service in draft.services:
            final, complete = _resolve(draft.zone.file, service, regions, report_for, regions_named)
            resolved[final.name] = final
            if complete and regions_clean:
                _check_endpoints(draft.zone.file, service, final, regions, report_for)
        finished.append(dataclasses.replace(draft.zone, services=frozen_map(resolved)))
    by_name = {name: regions[name].region for name in sorted(regions)}
    return tuple(finished), frozen_map(by_name)


def _unique_regions(drafts: list[RegionDraft], report_for: ReportFor) -> dict[str, RegionDraft]:
    out: dict[str, RegionDraft] = {}
    for draft in drafts:
        name = draft.region.name
        if name in out:
            report_for(draft.region.file).add(
                draft.line, f"region {name!r} is already defined in {out[name].region.file}"
            )
            continue
        out[name] = draft
    return out


def _unique_zones(drafts: list[ZoneDraft], report_for: ReportFor) -> list[ZoneDraft]:
    first: dict[str, ZoneDraft] = {}
    for draft in drafts:
        name = draft.zone.name
        if name in first:
            report_for(draft.zone.file).add(
                draft.line, f"zone {name} is already defined in {first[name].zone.file}"
            )
            continue
        first[name] = draft
    return list(first.values())


def _service_index(zones: list[ZoneDraft], report_for: ReportFor) -> dict[str, ZoneDraft]:
    """Service name -> its zone; a name defined by two (nested) zones is reported."""
    out: dict[str, ZoneDraft] = {}
    for draft in zones:
        for service in draft.services:
            name = service.service.name
            if name in out:
                report_for(draft.zone.file).add(
                    service.line, f"service {name} is also defined in {out[name].zone.file}"
                )
                continue
            out[name] = draft
    return out


def _check_region_services(
    regions: Mapping[str, RegionDraft],
    services: Mapping[str, ZoneDraft],
    report_for: ReportFor,
) -> None:
    known = sorted(services)
    for draft in regions.values():
        for name, line in draft.service_lines.items():
            if name not in services:
                report_for(draft.region.file).add(
                    line, f"no zone defines a service {name}{suggest(name, known)}"
                )


def _resolve(
    file: str,
    draft: ServiceDraft,
    regions: Mapping[str, RegionDraft],
    report_for: ReportFor,
    regions_named: bool,
) -> tuple[Service, bool]:
    """The service with its regions, and whether every region it names exists."""
    complete = True
    if draft.regions is None:
        chosen = tuple(sorted(regions))
    else:
        for region in draft.regions:
            if region.value not in regions:
                complete = False
                if regions_named:
                    report_for(file).add(region.line, _undefined(region.value, regions))
        chosen = tuple(dict.fromkeys(r.value for r in draft.regions if r.value in regions))
    if draft.weights is not None:
        weights = {key.value: weight for key, weight in draft.weights if key.value in regions}
    else:
        weights = {name: regions[name].region.weight for name in chosen}
    service = dataclasses.replace(draft.service, regions=chosen, region_weights=frozen_map(weights))
    return service, complete


def _undefined(name: str, regions: Mapping[str, RegionDraft]) -> str:
    if not regions:
        return f"undefined region {name!r}: there are no region files (regions/*.yaml)"
    return f"undefined region {name!r}{suggest(name, list(regions))}; defined: " + ", ".join(
        sorted(regions)
    )


def _check_endpoints(
    file: str,
    draft: ServiceDraft,
    service: Service,
    regions: Mapping[str, RegionDraft],
    report_for: ReportFor,
) -> None:
    name = service.name
    if any(regions[r].region.endpoints.get(name) for r in service.regions):
        return
    where = ", ".join(service.regions) if service.regions else "none"
    report_for(file).add(
        draft.line, f"service {name} has no endpoints in any of its regions ({where})"
    )
