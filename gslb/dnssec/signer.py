"""Online signing: a `Decision` for a DO=1 query → the same decision, signed.

A GSLB cannot pre-sign: its answers depend on the client and on health, so each answer is
signed when the full path makes it, and the answer cache keeps the signed reply apart
from the unsigned one (the DO bit is part of its key). Pure: the time comes in as `now`.

* every RRset of the answer section and the authority's SOA get an RRSIG per active key,
  with the RRset's TTL (RFC 4035 §2.2) and the original TTL in its rdata;
* a referral keeps its NS and glue unsigned (they are the child's) and proves that the
  delegation has no DS with the NSEC at the cut (RFC 4035 §3.1.4);
* negative answers by compact denial (RFC 9824): one NSEC at the name, next name
  `\\000.name`, so nothing can be walked and one signature covers the denial. A name that
  does not exist is answered NOERROR with NXNAME in the NSEC's types; NODATA lists the
  types the name has;
* additional records are signed when the zone is authoritative for them (not glue).

Validity: inception an hour before the start of the current hour, expiration
`VALIDITY` after it. Times are whole hours, so within an hour the same answer signs to
the same bytes (deterministic ECDSA, Ed25519), and the runtime drops cached answers every
hour (`hour_of`), so no cached signature is older than an hour: each has at least
`VALIDITY` minus two hours left.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dnslib.dns import RD

from gslb.dnssec.keys import ZoneKey
from gslb.dnssec.wire import (
    TYPE_CDNSKEY,
    TYPE_CDS,
    TYPE_DNSKEY,
    TYPE_NSEC,
    TYPE_NXNAME,
    TYPE_RRSIG,
    ds_rdata,
    nsec_rdata,
    rdata_wire,
    rrsig_head,
    signed_data,
    successor_wire,
)
from gslb.plan import TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_NS, Node, RRSet, ZonePlan
from gslb.select import Decision
from gslb.select.zonewalk import cut_above

HOUR = 3600
VALIDITY = 7 * 86400  # signatures stay valid a week: days of margin if re-signing stops
NOERROR, NXDOMAIN = 0, 3


def hour_of(now: float) -> int:
    """The signing period `now` falls in; signatures made in one period are alike."""
    return int(now // HOUR)


def validity(now: float) -> tuple[int, int]:
    """(inception, expiration) of signatures made at `now`."""
    start = hour_of(now) * HOUR
    return start - HOUR, start + VALIDITY


@dataclass(frozen=True, slots=True)
class KeyRecords:
    """The apex RRsets that publish a zone's keys (made once per plan)."""

    dnskey: RRSet  # every published key
    cds: RRSet  # the DS the parent should hold: the newest active key's
    cdnskey: RRSet

    def by_type(self) -> dict[int, RRSet]:
        return {TYPE_DNSKEY: self.dnskey, TYPE_CDS: self.cds, TYPE_CDNSKEY: self.cdnskey}


def key_records(zone: str, keys: tuple[ZoneKey, ...], ttl: int) -> KeyRecords:
    published = tuple(RD(k.dnskey) for k in keys if k.published)
    newest = [k for k in keys if k.signs][-1]  # keys are oldest first
    return KeyRecords(
        RRSet(zone, TYPE_DNSKEY, ttl, published),
        RRSet(zone, TYPE_CDS, ttl, (RD(ds_rdata(zone, newest.dnskey)),)),
        RRSet(zone, TYPE_CDNSKEY, ttl, (RD(newest.dnskey),)),
    )


@dataclass(frozen=True, slots=True)
class ZoneSigner:
    zone: str
    keys: tuple[ZoneKey, ...]  # the active ones: each signs every RRset
    nsec_ttl: int  # min(SOA TTL, SOA minimum), as RFC 9077 has it

    def sign(self, rrset: RRSet, now: float) -> RRSet:
        """The RRSIG RRset covering `rrset`: one signature per active key."""
        inception, expiration = validity(now)
        rdatas = [rdata_wire(rd) for rd in rrset.rdatas]
        signatures = []
        for key in self.keys:
            head = rrsig_head(
                rrset.rtype,
                key.algorithm,
                rrset.name,
                rrset.ttl,
                expiration,
                inception,
                key.tag,
                self.zone,
            )
            data = signed_data(head, rrset.name, rrset.rtype, rrset.ttl, rdatas)
            signatures.append(RD(head + key.sign(data)))
        return RRSet(rrset.name, TYPE_RRSIG, rrset.ttl, tuple(signatures))

    def secure(self, decision: Decision, zone: ZonePlan, qname: str, now: float) -> Decision:
        """`decision` as a DO=1 query gets it; unchanged when it is not ours to sign."""
        if decision.rcode not in (NOERROR, NXDOMAIN) or decision.zone != self.zone:
            return decision
        if not decision.authoritative:
            return self._referral(decision, now)
        answer = self._with_signatures(decision.answer, now)
        authority: tuple[RRSet, ...] = ()
        rcode = decision.rcode
        if decision.authority or rcode == NXDOMAIN:
            # A negative answer (NODATA or NXDOMAIN, after any CNAMEs): the name it is
            # about is the last alias's target, or the question's name.
            cnames = [r for r in decision.answer if r.rtype == TYPE_CNAME]
            name = str(cnames[-1].rdatas[0].label).lower() if cnames else qname
            authority = (
                *self._with_signatures(decision.authority, now),
                *self._with_signatures((self._denial(zone, name),), now),
            )
            rcode = NOERROR  # compact denial: the name "exists", with no data
        additional = tuple(
            signed
            for rrset in decision.additional
            for signed in (
                (rrset, self.sign(rrset, now)) if _authoritative(zone, rrset.name) else (rrset,)
            )
        )
        return replace(
            decision, rcode=rcode, answer=answer, authority=authority, additional=additional
        )

    def _referral(self, decision: Decision, now: float) -> Decision:
        """NS as they are (the child's), plus the signed NSEC that shows there is no DS."""
        cut = next((r.name for r in decision.authority if r.rtype == TYPE_NS), None)
        if cut is None:
            return decision
        nsec = RRSet(
            cut,
            TYPE_NSEC,
            self.nsec_ttl,
            (RD(nsec_rdata(successor_wire(cut), (TYPE_NS, TYPE_RRSIG, TYPE_NSEC))),),
        )
        authority = (*decision.authority, nsec, self.sign(nsec, now))
        return replace(decision, authority=authority)

    def _denial(self, zone: ZonePlan, name: str) -> RRSet:
        node = zone.nodes.get(name)
        types = (TYPE_NXNAME,) if node is None else _types_at(node)
        rdata = nsec_rdata(successor_wire(name), (*types, TYPE_RRSIG, TYPE_NSEC))
        return RRSet(name, TYPE_NSEC, self.nsec_ttl, (RD(rdata),))

    def _with_signatures(self, rrsets: tuple[RRSet, ...], now: float) -> tuple[RRSet, ...]:
        return tuple(signed for rrset in rrsets for signed in (rrset, self.sign(rrset, now)))


def _types_at(node: Node) -> tuple[int, ...]:
    types = list(node.rrsets)
    service = node.service
    if service is not None:
        types += [TYPE_A] if service.has_v4 else []
        types += [TYPE_AAAA] if service.has_v6 else []
    return tuple(types)


def _authoritative(zone: ZonePlan, name: str) -> bool:
    """In the zone and not at or below one of its cuts (there it is the child's glue)."""
    inside = name == zone.name or name.endswith("." + zone.name)
    return inside and cut_above(zone, name) is None
