"""One cached NXDOMAIN per zone, question type and EDNS, shared by every name that does
not exist.

Resolvers ask for names that do not exist all the time, most of them once (typos,
random-label probes, a flood of them in an attack). Cached per name, each one costs a
full-path answer and a cache entry that is never asked for again. But the reply's body
(the zone's SOA in the authority section) hardly depends on the name: what `classify()`
tells without a client (NXDOMAIN is `Fixed`: the zone), QTYPE (a metrics label), the
EDNS byte of the key, and where the body's compression pointers into the question land.
Those point at suffixes of the name, which sit where the length of its first label puts
them under its parent: so (zone, QTYPE, EDNS, parent, length of the first label) keys an
answer that all such names share, unless the question itself is (a suffix of) a name
in the body, which then points at it whole.
Not with DO set: a signed denial names the question, so DO=1 answers stay per name.
Only plain names (letters, digits, hyphen, underscore) are classified here: their text
form cannot differ from the full path's, and anything else keeps its own entry.
"""

from __future__ import annotations

from gslb.dns.answers import NONE, Route
from gslb.dns.fastparse import EDNS_DO, Parsed
from gslb.plan import Plan, RRSet
from gslb.select import NXDOMAIN, UNKNOWN_CLIENT, Fixed, Question, classify

_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_")


def text_name(wire_name: bytes) -> str | None:
    """`a.b.` from the lower-case wire form of a name; None unless every label is plain."""
    labels = []
    pos = 0
    length = wire_name[0]
    while length:
        label = wire_name[pos + 1 : pos + 1 + length]
        if not _PLAIN.issuperset(label):
            return None
        labels.append(label.decode("ascii"))
        pos += length + 1
        length = wire_name[pos]
    return ".".join(labels) + "." if labels else "."


def nxdomain_route(plan: Plan, q: Parsed) -> Route | None:
    """The route of a name that does not exist in one of our zones, whose answers are
    shared by all such names (see the module docstring); None for any other name."""
    if q.edns == EDNS_DO:
        return None
    name = text_name(q.key[:-3])  # the key: the name, QTYPE (2 bytes), the EDNS byte
    if name is None:
        return None
    key = classify(plan, Question(name, q.qtype), UNKNOWN_CLIENT)
    if not isinstance(key, Fixed):
        return None
    decision = key.decision
    if decision.rcode != NXDOMAIN or decision.answer:  # after a CNAME: the chain is per name
        return None
    if any(n == name or n.endswith("." + name) for n in _names_in(decision.authority)):
        return None  # the body would point at the question itself
    first, parent = name.split(".", 1)
    return Route(
        False, NONE, False, shared=("nxdomain", decision.zone, q.key[-3:], parent, len(first))
    )


def _names_in(rrsets: tuple[RRSet, ...]) -> list[str]:
    """The owner names and the SOA's names of a negative answer's authority section."""
    names = []
    for rrset in rrsets:
        names.append(rrset.name)
        for rd in rrset.rdatas:
            for field in ("mname", "rname"):
                value = getattr(rd, field, None)
                if value is not None:
                    names.append(str(value).lower())
    return names
