"""DNS wire codec for an authoritative server: decode a query, encode a reply.

Sans-IO: bytes in, values out. Decoding classifies everything a query can get
wrong into one `WireError` carrying the rcode to answer with; encoding turns a
`Decision` into bytes that fit the client's size, setting TC when they do not.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dnslib import QTYPE, RR, DNSBuffer, DNSLabel, DNSRecord
from dnslib.dns import EDNSOption

from gslb.dns.ecs import OPTION_CODE, ClientSubnet, EcsError, parse_ecs
from gslb.dns.layout import Layout, OptionError, layout, options
from gslb.plan import RRSet
from gslb.select import FORMERR, NOTIMP

TYPE_OPT = 41
CLASS_IN = 1
BADVERS = 16  # extended rcode: upper 8 bits go in the OPT TTL
HEADER = struct.Struct("!HHHHHH")
FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_CD = 0x0010
EDNS_DO = 0x8000
MIN_UDP = 512
QUESTION_POINTER = 0xC00C  # a compression pointer to the name at offset 12
MAX_NAME = 255  # octets of a name on the wire (RFC 1035 §2.3.4)


@dataclass(frozen=True, slots=True)
class Edns:
    udp_size: int
    version: int
    do: bool
    ecs: ClientSubnet | None


@dataclass(frozen=True, slots=True)
class Query:
    id: int
    flags: int
    qname: DNSLabel  # as sent: the reply echoes its case
    name: str  # absolute, lower case: what lookups use
    qtype: int
    qclass: int
    edns: Edns | None


class WireError(Exception):
    """A query that gets an error reply (or none): rcode, and what can be echoed."""

    def __init__(
        self,
        rcode: int,
        message: str,
        query: Query | None = None,
        header: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.rcode = rcode
        self.query = query  # set when the question and EDNS were understood
        self.header = header  # (id, flags) when only the header was


class Drop(Exception):
    """Not worth an answer: too short for a header, or a response rather than a query."""


def _edns(record: DNSRecord, shape: Layout, header: tuple[int, int]) -> Edns | None:
    if shape.opt_count == 0:
        return None
    if shape.opt_count > 1:
        raise WireError(FORMERR, "more than one OPT record", header=header)
    opt = shape.opt
    if opt is None or not any(rr.rtype == TYPE_OPT for rr in record.ar):
        raise WireError(FORMERR, "OPT outside the additional section", header=header)
    if not opt.at_root:
        raise WireError(FORMERR, "OPT owner is not the root", header=header)
    # The options are read from the raw RDATA: dnslib skips an option of four bytes or
    # less and trailing bytes that do not make an option, which must be FORMERR instead.
    try:
        found = options(opt.rdata)
    except OptionError as exc:
        raise WireError(FORMERR, str(exc), header=header) from exc
    ecs = None
    seen_ecs = False
    for code, data in found:
        if code != OPTION_CODE:
            continue  # unknown options are ignored and never echoed (RFC 6891 §6.1.2)
        if seen_ecs:
            raise WireError(FORMERR, "more than one ECS option", header=header)
        seen_ecs = True
        try:
            ecs = parse_ecs(data)
        except EcsError as exc:
            raise WireError(FORMERR, str(exc), header=header) from exc
    return Edns(
        udp_size=opt.udp_size,
        version=(opt.ttl >> 16) & 0xFF,
        do=bool(opt.ttl & EDNS_DO),
        ecs=ecs,
    )


def decode_query(wire: bytes) -> Query:
    """Decode a query; raise Drop or WireError for everything that gets no normal answer."""
    if len(wire) < HEADER.size:
        raise Drop("shorter than a DNS header")
    qid, flags, qdcount, _, _, _ = HEADER.unpack_from(wire)
    if flags & FLAG_QR:
        raise Drop("a response, not a query")
    header = (qid, flags)
    opcode = (flags >> 11) & 0xF
    if opcode != 0:
        raise WireError(NOTIMP, f"opcode {opcode} is not implemented", header=header)
    if qdcount != 1:
        raise WireError(FORMERR, f"QDCOUNT is {qdcount}, not 1", header=header)
    try:
        record = DNSRecord.parse(wire)
    except Exception as exc:  # dnslib raises several types for malformed input
        raise WireError(FORMERR, f"malformed: {exc}", header=header) from exc
    question = record.questions[0]
    if sum(len(label) + 1 for label in question.qname.label) + 1 > MAX_NAME:
        raise WireError(FORMERR, "question name longer than 255 octets", header=header)
    edns = _edns(record, layout(wire), header)
    name = str(question.qname).lower()
    if not name.endswith("."):
        name += "."
    query = Query(qid, flags, question.qname, name, question.qtype, question.qclass, edns)
    if edns is not None and edns.version > 0:
        # RFC 6891 §6.1.3: answer BADVERS with our version (0) and nothing else.
        plain = Query(
            qid,
            flags,
            question.qname,
            name,
            question.qtype,
            question.qclass,
            Edns(edns.udp_size, 0, edns.do, None),
        )
        raise WireError(BADVERS, f"EDNS version {edns.version}", query=plain)
    return query


def max_reply_size(query: Query | None, cap: int, tcp: bool) -> int:
    if tcp:
        return 65535
    if query is None or query.edns is None:
        return MIN_UDP
    return max(MIN_UDP, min(query.edns.udp_size, cap))


def _reply_flags(query_flags: int, rcode: int, aa: bool) -> int:
    flags = FLAG_QR | (query_flags & (0xF << 11)) | (query_flags & (FLAG_RD | FLAG_CD))
    if aa:
        flags |= FLAG_AA
    return flags | (rcode & 0xF)


def _opt(query: Query, rcode: int, cap: int, ecs_data: bytes | None) -> RR:
    assert query.edns is not None
    ttl = ((rcode >> 4) << 24) | (EDNS_DO if query.edns.do else 0)  # version 0, other flags clear
    options = [EDNSOption(OPTION_CODE, ecs_data)] if ecs_data is not None else []
    return RR(rname=".", rtype=TYPE_OPT, rclass=cap, ttl=ttl, rdata=options)


def _pack_rrsets(buffer: DNSBuffer, rrsets: tuple[RRSet, ...], query: Query) -> int:
    count = 0
    for rrset in rrsets:
        # The owner that is the query name points at the question, so it takes the query's
        # spelling (RFC 1034 §3.1); every other name is compressed only against names
        # written after the question (see encode_reply).
        at_question = rrset.name == query.name
        owner = DNSLabel(rrset.name)
        for rdata in rrset.rdatas:
            if at_question:
                buffer.pack("!H", QUESTION_POINTER)
                buffer.pack("!HHI", rrset.rtype, CLASS_IN, rrset.ttl)
                length_at = buffer.offset
                buffer.pack("!H", 0)
                rdata.pack(buffer)
                buffer.update(length_at, "!H", buffer.offset - length_at - 2)
            else:
                RR(
                    rname=owner, rtype=rrset.rtype, rclass=CLASS_IN, ttl=rrset.ttl, rdata=rdata
                ).pack(buffer)
            count += 1
    return count


def encode_reply(
    query: Query,
    rcode: int,
    aa: bool,
    sections: tuple[tuple[RRSet, ...], tuple[RRSet, ...], tuple[RRSet, ...]],
    *,
    max_size: int,
    udp_cap: int,
    ecs_scope: int | None = None,
) -> bytes:
    """Encode a reply; if it does not fit `max_size`, send the question alone with TC."""
    ecs_data = None
    if query.edns is not None and query.edns.ecs is not None and ecs_scope is not None:
        ecs_data = query.edns.ecs.reply_option(ecs_scope)
    buffer = DNSBuffer()
    buffer.pack("!HHHHHH", query.id, 0, 1, 0, 0, 0)  # counts patched below
    # The question is written without entering its names in the compression table: later
    # names never point into it (only the owner that is the query name does, always at
    # offset 12), so the bytes after the question do not depend on the case the query was
    # spelled in. The fast path (gslb/dns/fast.py) relies on that to share one cached
    # reply between 0x20-randomised spellings of a name.
    buffer.encode_name_nocompress(query.qname)
    buffer.pack("!HH", query.qtype, query.qclass)
    question_end = len(buffer.data)
    counts = [_pack_rrsets(buffer, section, query) for section in sections]
    opt_count = 0
    if query.edns is not None:
        _opt(query, rcode, udp_cap, ecs_data).pack(buffer)
        opt_count = 1
    wire = bytes(buffer.data)
    flags = _reply_flags(query.flags, rcode, aa)
    if len(wire) > max_size:
        flags |= FLAG_TC
        counts = [0, 0, 0]
        tail = b""
        if query.edns is not None:
            opt_buffer = DNSBuffer()
            _opt(query, rcode, udp_cap, ecs_data).pack(opt_buffer)
            tail = bytes(opt_buffer.data)
        wire = wire[:question_end] + tail
    header = HEADER.pack(query.id, flags, 1, counts[0], counts[1], counts[2] + opt_count)
    return header + wire[HEADER.size :]


def encode_error(exc: WireError, wire: bytes, udp_cap: int) -> bytes | None:
    """The reply for a query that failed to decode or validate.

    It carries the question and an OPT record whenever the query had them and they can be
    read (RFC 6891 §7): a bare header makes resolvers such as dig retry without EDNS.
    """
    if exc.query is not None:
        return encode_reply(
            exc.query, exc.rcode, False, ((), (), ()), max_size=65535, udp_cap=udp_cap
        )
    if exc.header is None:
        return None
    qid, qflags = exc.header
    shape = layout(wire)
    question = b"" if shape.question_end is None else wire[HEADER.size : shape.question_end]
    tail = b""
    if shape.opt is not None:
        ttl = ((exc.rcode >> 4) << 24) | (shape.opt.ttl & EDNS_DO)
        tail = b"\x00" + struct.pack("!HHIH", TYPE_OPT, udp_cap, ttl, 0)
    flags = _reply_flags(qflags, exc.rcode, False)
    head = HEADER.pack(qid, flags, 1 if question else 0, 0, 0, 1 if tail else 0)
    return head + question + tail


def qtype_name(qtype: int) -> str:
    return str(QTYPE.get(qtype, f"TYPE{qtype}"))


OTHER_QTYPE = -1  # the metric label of every type we do not know by name
_KNOWN_QTYPES = frozenset(QTYPE.forward)


def qtype_label(qtype: int) -> int:
    """`qtype` for metric labels: itself when we know its name, else OTHER_QTYPE, so any
    number of raw types a client sends makes a bounded set of series."""
    return qtype if qtype in _KNOWN_QTYPES else OTHER_QTYPE


def qtype_label_name(qtype: int) -> str:
    return "other" if qtype == OTHER_QTYPE else qtype_name(qtype)


RCODE_NAMES = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
    16: "BADVERS",
}


def rcode_name(rcode: int) -> str:
    return RCODE_NAMES.get(rcode, str(rcode))
