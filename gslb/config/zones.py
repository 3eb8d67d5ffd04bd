"""A parsed zone file → `Zone`, with the per-zone rules: owners inside the zone,
rdata valid and absolute, CNAME alone at its owner, services apart from static names.

A service's regions can only be resolved once every region file is read, so this
returns a draft; `gslb.config.links` finishes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from gslb.config import names, rdata
from gslb.config.kinds import Ctx, Marked
from gslb.config.schema import RECORD_KEYS, SOA
from gslb.config.tables import Parsed
from gslb.model import DnssecSpec, Record, Service, Soa, Zone, frozen_map


@dataclass(frozen=True, slots=True)
class ServiceDraft:
    service: Service  # `regions` and `region_weights` still empty
    line: int  # the line of the service's key
    regions: tuple[Marked[str], ...] | None  # as written (list or mapping keys); None: all
    weights: tuple[tuple[Marked[str], int], ...] | None  # the mapping form


@dataclass(frozen=True, slots=True)
class ZoneDraft:
    zone: Zone
    line: int  # the line of `zone:`
    services: tuple[ServiceDraft, ...]
    dnssec_line: int = 0  # the line of `dnssec:`, where key problems are reported


def build_zone(parsed: Parsed, file: str, ctx: Ctx) -> ZoneDraft | None:
    """The zone, or None when even its name is unusable (problems are in ctx)."""
    origin: str | None = parsed["zone"]
    if origin is None:
        return None
    zone_ttl: int = parsed["ttl"]
    owners: dict[str, int] = {}  # owner name -> line of its key
    records = _static_records(parsed, origin, zone_ttl, owners, ctx)
    apex_ttl = _apex_ttl(parsed, zone_ttl)
    ns = _name_servers(parsed, records, origin)
    soa = _soa(parsed, origin, zone_ttl, ns)
    head = [
        Record(origin, "SOA", soa.ttl, _soa_rdata(soa)),
        *(Record(origin, "NS", apex_ttl, server) for server in ns),
    ]
    for record in head:
        _verify(record, parsed.line_of("soa" if record.rtype == "SOA" else "ns"), ctx)
    tail = [r for r in records if not (r.name == origin and r.rtype == "NS")]
    services = _services(parsed, origin, owners, ctx)
    zone = Zone(
        name=origin,
        file=file,
        ttl=zone_ttl,
        soa=soa,
        ns=ns,
        records=(*head, *tail),
        services=frozen_map({draft.service.name: draft.service for draft in services}),
        dnssec=_dnssec(parsed, ctx),
    )
    return ZoneDraft(zone, parsed.line_of("zone"), services, parsed.line_of("dnssec"))


def _dnssec(parsed: Parsed, ctx: Ctx) -> DnssecSpec | None:
    block: Parsed | None = parsed["dnssec"]
    if block is None:
        return None
    directory = os.path.normpath(os.path.join(ctx.directory, block["keys"]))
    return DnssecSpec(block["algorithm"], directory, block["denial"])


def _apex_ttl(parsed: Parsed, zone_ttl: int) -> int:
    for key, rset in parsed["records"]:
        if key.value.strip() == "@" and rset["ttl"] is not None:
            return int(rset["ttl"])
    return zone_ttl


def _name_servers(parsed: Parsed, records: list[Record], origin: str) -> tuple[str, ...]:
    listed: list[str] = [m.value for m in parsed["ns"] or ()]
    listed += [r.rdata for r in records if r.name == origin and r.rtype == "NS"]
    return tuple(dict.fromkeys(listed))  # in order, without repeats


def _soa(parsed: Parsed, origin: str, zone_ttl: int, ns: tuple[str, ...]) -> Soa:
    soa: Parsed | None = parsed["soa"]
    values = dict(soa.values) if soa is not None else {f.key: f.default for f in SOA.fields}
    mname = values["mname"] or (ns[0] if ns else origin)
    rname = values["rname"] or ("hostmaster." + origin if origin != "." else "hostmaster.")
    return Soa(
        mname=mname,
        rname=rname,
        serial=values["serial"],
        refresh=values["refresh"],
        retry=values["retry"],
        expire=values["expire"],
        minimum=values["minimum"],
        ttl=zone_ttl if values["ttl"] is None else values["ttl"],
    )


def _soa_rdata(soa: Soa) -> str:
    return (
        f"{soa.mname} {soa.rname} {soa.serial} {soa.refresh} {soa.retry} {soa.expire} {soa.minimum}"
    )


def _static_records(
    parsed: Parsed, origin: str, zone_ttl: int, owners: dict[str, int], ctx: Ctx
) -> list[Record]:
    out: list[Record] = []
    for key, rset in parsed["records"]:
        try:
            owner = names.owner(key.value, origin)
        except names.BadName as exc:
            ctx.report.add(key.line, f"bad owner name: {exc}")
            continue
        if owner in owners:
            ctx.report.add(key.line, f"owner {owner} is already written at line {owners[owner]}")
            continue
        owners[owner] = key.line
        ttl = zone_ttl if rset["ttl"] is None else int(rset["ttl"])
        _check_cname(owner, origin, rset, key.line, ctx)
        for rtype in RECORD_KEYS:
            seen: set[str] = set()
            for item in rset[rtype] or ():
                try:
                    text = rdata.to_presentation(rtype, item.value, origin)
                except rdata.BadRdata as exc:
                    ctx.report.add(item.line, str(exc))
                    continue
                if text in seen:
                    ctx.report.add(item.line, f"duplicate {rtype} record {text!r} at {owner}")
                    continue
                seen.add(text)
                record = Record(owner, rtype, ttl, text)
                if _verify(record, item.line, ctx):
                    out.append(record)
    return out


def _check_cname(owner: str, origin: str, rset: Parsed, line: int, ctx: Ctx) -> None:
    cnames: tuple[Marked[str], ...] = rset["CNAME"] or ()
    if not cnames:
        return
    if owner == origin:
        ctx.report.add(rset.line_of("CNAME"), f"CNAME at the zone apex {origin} is not allowed")
    if len(cnames) > 1:
        ctx.report.add(cnames[1].line, f"more than one CNAME at {owner}")
    others = [rtype for rtype in RECORD_KEYS if rtype != "CNAME" and rset[rtype]]
    if others:
        ctx.report.add(
            rset.line_of("CNAME"),
            f"CNAME beside other data at {owner} ({', '.join(others)}): a CNAME must be alone",
        )


def _verify(record: Record, line: int, ctx: Ctx) -> bool:
    try:
        rdata.verify_with_dnslib(record.name, record.ttl, record.rtype, record.rdata)
    except rdata.BadRdata as exc:
        ctx.report.add(line, str(exc))
        return False
    return True


def _services(
    parsed: Parsed, origin: str, owners: dict[str, int], ctx: Ctx
) -> tuple[ServiceDraft, ...]:
    out: dict[str, ServiceDraft] = {}
    for key, spec in parsed["services"]:
        try:
            name = names.owner(key.value, origin)
        except names.BadName as exc:
            ctx.report.add(key.line, f"bad service name: {exc}")
            continue
        if name == origin:
            ctx.report.add(key.line, f"a service cannot be the zone apex {origin}")
            continue
        if name in owners:
            ctx.report.add(
                key.line,
                f"service name {name} is also a static record owner (line {owners[name]})",
            )
            continue
        if name in out:
            ctx.report.add(key.line, f"service {name} is already defined at line {out[name].line}")
            continue
        out[name] = _service_draft(name, key.line, spec, ctx)
    return tuple(out.values())


def _service_draft(name: str, line: int, spec: Parsed, ctx: Ctx) -> ServiceDraft:
    written = spec["regions"]
    regions: tuple[Marked[str], ...] | None = None
    weights: tuple[tuple[Marked[str], int], ...] | None = None
    if written is not None:
        if written and isinstance(written[0], tuple):
            weights = written
            regions = tuple(key for key, _ in written)
        else:
            regions = written
        seen: set[str] = set()
        for region in regions or ():
            if region.value in seen:
                ctx.report.add(region.line, f"region {region.value!r} is listed twice")
            seen.add(region.value)
    service = Service(
        name=name,
        ttl=spec["ttl"],
        policy=spec["policy"],
        select=spec["select"],
        answers=spec["answers"],
        regions=(),
    )
    return ServiceDraft(service, line, regions, weights)
