"""Zone structure the selection reads: delegations and the glue of NS, MX and SRV targets."""

from __future__ import annotations

from gslb.plan import TYPE_A, TYPE_AAAA, TYPE_NS, RRSet, ZonePlan

TYPE_MX, TYPE_SRV = 15, 33
TYPE_DS = 43


def _target(rrset: RRSet) -> list[str]:
    """Names an RRset points at, for the additional section (NS, MX, SRV targets)."""
    out = []
    for rd in rrset.rdatas:
        label = getattr(rd, "label", None) or getattr(rd, "target", None) or getattr(rd, "mx", None)
        if label is not None:
            out.append(str(label).lower())
    return out


def glue(zone: ZonePlan, rrsets: tuple[RRSet, ...]) -> tuple[RRSet, ...]:
    out: list[RRSet] = []
    for rrset in rrsets:
        if rrset.rtype not in (TYPE_NS, TYPE_MX, TYPE_SRV):
            continue
        for name in _target(rrset):
            node = zone.nodes.get(name)
            if node is None:
                continue
            for rtype in (TYPE_A, TYPE_AAAA):
                found = node.rrsets.get(rtype)
                if found is not None and found not in out:
                    out.append(found)
    return tuple(out)


def cut_above(zone: ZonePlan, qname: str) -> str | None:
    """The delegation at or above `qname` inside `zone`, if any."""
    if not zone.cuts:
        return None
    name = qname
    while name != zone.name and name.endswith("." + zone.name):
        if name in zone.cuts:
            return name
        name = name.split(".", 1)[1]
    return None
