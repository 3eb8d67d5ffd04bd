"""One cached NXDOMAIN per zone, question type and EDNS, shared by every name that does
not exist.

Resolvers ask for names that do not exist all the time, most of them once (typos,
random-label probes, a flood of them in an attack). Cached per name, each one costs an
encoded answer and a cache entry that is never asked for again. But the reply's body
(the zone's SOA in the authority section) hardly depends on the name: what `classify()`
decided (NXDOMAIN is `Fixed`: the zone), QTYPE (a metrics label), the EDNS byte of the
key, and where the body's compression pointers into the question land. Those point at
suffixes of the name, which sit where the length of its first label puts them under its
parent: so (zone, QTYPE, EDNS, parent, length of the first label) keys an answer that all
such names share, unless the question itself is (a suffix of) a name in the body, which
then points at it whole.
Not with DO set: a signed denial names the question, so DO=1 answers stay per name.
Only plain names (letters, digits, hyphen, underscore) share: their text form cannot
differ from the wire's, and anything else keeps its own entry.
"""

from __future__ import annotations

from gslb.dns.fastparse import EDNS_DO, Parsed
from gslb.plan import RRSet
from gslb.select import NXDOMAIN, Decision, Question

_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_")


def is_plain(wire_name: bytes) -> bool:
    """Whether every label of a lower-case wire name is plain."""
    pos = 0
    length = wire_name[0]
    while length:
        if not _PLAIN.issuperset(wire_name[pos + 1 : pos + 1 + length]):
            return False
        pos += length + 1
        length = wire_name[pos]
    return True


def shared_nxdomain(q: Parsed, question: Question, decision: Decision) -> object:
    """The key of the answer all names like this one share when `decision` (a `Fixed` one)
    is such an NXDOMAIN (see the module docstring); None for any other."""
    if decision.rcode != NXDOMAIN or decision.answer or q.edns == EDNS_DO:
        return None  # after a CNAME the chain is per name; DO: the denial names it
    if not is_plain(q.key[:-3]):  # the key: the name, QTYPE (2 bytes), the EDNS byte
        return None
    name = question.name
    if any(n == name or n.endswith("." + name) for n in _body_names(decision.authority)):
        return None  # the body would point at the question itself
    first, parent = name.split(".", 1)
    return ("nxdomain", decision.zone, q.key[-3:], parent, len(first))


# The names of each zone's negative SOA, made once (dnslib makes text of a name slowly, and
# every miss for a name that does not exist asks): by id() of the RRset, which is kept with
# them so that the id stays its own.
_NAMES_OF: dict[int, tuple[RRSet, list[str]]] = {}
KEPT = 1000  # zones' SOAs: more only after many reloads, then it starts again


def _body_names(rrsets: tuple[RRSet, ...]) -> list[str]:
    names: list[str] = []
    for rrset in rrsets:
        found = _NAMES_OF.get(id(rrset))
        if found is None or found[0] is not rrset:
            if len(_NAMES_OF) >= KEPT:
                _NAMES_OF.clear()
            found = _NAMES_OF[id(rrset)] = (rrset, _names_in((rrset,)))
        names.extend(found[1])
    return names


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
