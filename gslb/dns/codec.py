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

from gslb.dns.cookies import COOKIE_CODE, well_formed
from gslb.dns.ecs import OPTION_CODE, ClientSubnet, EcsError, parse_ecs
from gslb.dns.layout import Layout, OptionError, layout, options
from gslb.plan import RRSet
from gslb.select import FORMERR, NOTIMP

TYPE_OPT = 41
TYPE_TSIG = 250
CLASS_IN = 1
OPCODE_UPDATE = 5
TYPE_SOA_BYTES = b"\x00\x06"
MAX_LABEL = 63
CLASS_CH = 3  # CHAOS: only the server's identity (id.server, hostname.bind) is answered
CLASS_ANY = 255
NOTAUTH = 9
BADKEY = 17  # TSIG error: the key is not known (RFC 8945 §5.2)
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
        tsig: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.rcode = rcode
        self.tsig = tsig  # a TSIG record the reply ends with (NOTAUTH for a key we lack)
        self.query = query  # set when the question and EDNS were understood
        self.header = header  # (id, flags) when only the header was


def _escape(label: bytes) -> str:
    # A dot, a backslash or a byte outside printable ASCII as \DDD (RFC 4343 §2.1), so
    # the text has dots only between labels and no config name (letters, digits, - and _)
    # can ever equal a name that holds such a label.
    if all(0x21 <= b <= 0x7E and b not in (0x2E, 0x5C) for b in label):
        return label.decode("ascii")
    return "".join(
        chr(b) if 0x21 <= b <= 0x7E and b not in (0x2E, 0x5C) else f"\\{b:03d}" for b in label
    )


def _question_labels(wire: bytes) -> tuple[bytes, ...] | None:
    """The question name's labels when it is plain labels (no pointer) that fit."""
    labels: list[bytes] = []
    pos = HEADER.size
    while pos < len(wire):
        length = wire[pos]
        if length == 0:
            return tuple(labels)
        if length > 63 or pos + 1 + length > len(wire):
            return None
        labels.append(wire[pos + 1 : pos + 1 + length])
        pos += 1 + length
    return None


def _all_utf8(labels: tuple[bytes, ...]) -> bool:
    try:
        for label in labels:
            label.decode()
    except UnicodeDecodeError:
        return False
    return True


def _with_stand_ins(wire: bytes, labels: tuple[bytes, ...]) -> bytes:
    name = b"".join(bytes((len(label),)) + b"x" * len(label) for label in labels)
    return wire[: HEADER.size] + name + wire[HEADER.size + len(name) :]


def lookup_name(labels: tuple[bytes, ...]) -> str:
    """The absolute, lower-case text of a name that lookups use, compared label by label:
    `www\\.gslb.example.com.` (first label "www.gslb") is not `www.gslb.example.com.`."""
    if not labels:
        return "."
    return ".".join(_escape(label.lower()) for label in labels) + "."


def _tsig_badkey(record: DNSRecord, qid: int) -> bytes | None:
    """The TSIG record of a NOTAUTH/BADKEY reply when the query is signed (we hold no
    keys: RFC 8945 §5.2), else None. Unsigned, as §5.3.2 requires for BADKEY."""
    signed = [rr for rr in record.ar if rr.rtype == TYPE_TSIG]
    if not signed:
        return None
    rr = signed[-1]
    rdata = bytes(getattr(rr.rdata, "data", b""))
    pos = 0
    while pos < len(rdata) and rdata[pos]:  # the algorithm name: plain labels
        pos += rdata[pos] + 1
    pos += 1
    algorithm, times = rdata[:pos], rdata[pos : pos + 8]  # time signed (6) and fudge (2)
    if len(times) != 8:
        times = bytes(8)
        algorithm = b"\x00"
    body = algorithm + times + struct.pack("!HHHH", 0, qid, BADKEY, 0)
    owner = DNSBuffer()
    owner.encode_name_nocompress(rr.rname)
    return bytes(owner.data) + struct.pack("!HHIH", TYPE_TSIG, CLASS_ANY, 0, len(body)) + body


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
    seen_ecs = seen_cookie = False
    for code, data in found:
        if code == COOKIE_CODE:
            # RFC 7873 §5.2.2: a length no cookie can have is FORMERR (the cookie itself is
            # answered by gslb/dns/server_options.py, when cookies are on).
            if seen_cookie or not well_formed(data):
                raise WireError(FORMERR, "malformed COOKIE option", header=header)
            seen_cookie = True
            continue
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
    labels = _question_labels(wire)
    try:
        try:
            record = DNSRecord.parse(wire)
        except Exception:
            if labels is None or _all_utf8(labels):
                raise
            # dnslib refuses labels that are not UTF-8; to DNS they are ordinary bytes
            # (RFC 2181 §11). Parse with same-length stand-ins, keep the labels as sent.
            record = DNSRecord.parse(_with_stand_ins(wire, labels))
            record.questions[0].qname = DNSLabel(list(labels))
    except Exception as exc:  # dnslib raises several types for malformed input
        raise WireError(FORMERR, f"malformed: {exc}", header=header) from exc
    question = record.questions[0]
    if any(len(label) > MAX_LABEL for label in question.qname.label):
        # dnslib reads the reserved label types (lengths 64-191) as long labels.
        raise WireError(FORMERR, "label longer than 63 octets", header=header)
    if sum(len(label) + 1 for label in question.qname.label) + 1 > MAX_NAME:
        raise WireError(FORMERR, "question name longer than 255 octets", header=header)
    edns = _edns(record, layout(wire), header)
    name = lookup_name(question.qname.label)
    tsig = _tsig_badkey(record, qid)
    if tsig is not None:
        echo = Query(qid, flags, question.qname, name, question.qtype, question.qclass, edns)
        raise WireError(NOTAUTH, "TSIG with a key we do not have", query=echo, tsig=tsig)
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
    return udp_limit(query.edns.udp_size if query and query.edns else None, cap)


def udp_limit(udp_size: int | None, cap: int) -> int:
    """The largest UDP reply for a query advertising `udp_size` (None: no EDNS)."""
    if udp_size is None:
        return MIN_UDP
    return max(MIN_UDP, min(udp_size, cap))


ECHOED_FLAGS = (0xF << 11) | FLAG_RD | FLAG_CD  # opcode, RD and CD: a reply repeats them


def _reply_flags(query_flags: int, rcode: int, aa: bool) -> int:
    flags = FLAG_QR | (query_flags & ECHOED_FLAGS)
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
    rclass = CLASS_CH if query.qclass == CLASS_CH else CLASS_IN  # ANY is answered as IN
    for rrset in rrsets:
        # The owner that is the query name points at the question, so it takes the query's
        # spelling (RFC 1034 §3.1); every other name is compressed only against names
        # written after the question (see encode_reply).
        at_question = rrset.name == query.name
        owner = DNSLabel(rrset.name)
        for rdata in rrset.rdatas:
            if at_question:
                buffer.pack("!H", QUESTION_POINTER)
                buffer.pack("!HHI", rrset.rtype, rclass, rrset.ttl)
                length_at = buffer.offset
                buffer.pack("!H", 0)
                rdata.pack(buffer)
                buffer.update(length_at, "!H", buffer.offset - length_at - 2)
            else:
                RR(rname=owner, rtype=rrset.rtype, rclass=rclass, ttl=rrset.ttl, rdata=rdata).pack(
                    buffer
                )
            count += 1
    return count


@dataclass(frozen=True, slots=True)
class ReplyParts:
    """A reply as parts, so one encoding serves every query that shares its answer.

    What each query brings is left out and put back by `assemble`: the ID, the RD and CD
    bits, the question as the query spelled it, and the ECS echo (the query's own subnet
    with the answer's scope). The body is the same for every spelling of the question
    (see `encode_parts`).
    """

    flags: int  # QR, AA, rcode: without the query's RD and CD
    counts: bytes  # QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT (with the OPT record)
    body: bytes  # the records after the question, up to the OPT record
    opt: bytes  # the OPT record up to its RDLENGTH; b"" without EDNS


def encode_parts(
    query: Query,
    rcode: int,
    aa: bool,
    sections: tuple[tuple[RRSet, ...], tuple[RRSet, ...], tuple[RRSet, ...]],
    *,
    udp_cap: int,
) -> ReplyParts:
    """The parts of a reply (`ReplyParts`), never truncated: `assemble` truncates."""
    buffer = DNSBuffer()
    buffer.pack("!HHHHHH", 0, 0, 1, 0, 0, 0)
    # The question's name and its suffixes are compression targets (as in Knot and NSD),
    # entered in lower case: which names point into it, and where, depends only on the
    # name in lower case, never on how the query spelled it, so the bytes after the
    # question are the same for every 0x20 spelling, and one body serves them all.
    buffer.encode_name_nocompress(query.qname)
    labels = [label.lower() for label in query.qname.label]
    at = HEADER.size
    for i, label in enumerate(labels):
        buffer.names[tuple(labels[i:])] = at
        at += len(label) + 1
    buffer.pack("!HH", query.qtype, query.qclass)
    question_end = len(buffer.data)
    counts = [_pack_rrsets(buffer, section, query) for section in sections]
    opt = b""
    if query.edns is not None:
        opt_buffer = DNSBuffer()
        _opt(query, rcode, udp_cap, None).pack(opt_buffer)
        opt = bytes(opt_buffer.data)[:-2]  # up to RDLENGTH, which the ECS echo decides
        counts[2] += 1
    return ReplyParts(
        _reply_flags(0, rcode, aa),
        struct.pack("!HHHH", 1, *counts),
        bytes(buffer.data[question_end:]),
        opt,
    )


def assemble(
    parts: ReplyParts, qid: bytes, query_flags: int, question: bytes, ecs: bytes, max_size: int
) -> bytes:
    """The reply from its parts and what the query brings: its ID (2 bytes), its flags, its
    question as sent and the ECS option data to echo (b"": none). A reply that does not fit
    `max_size` is the question alone (and the OPT record) with TC."""
    flags = parts.flags | (query_flags & ECHOED_FLAGS)
    head = flags.to_bytes(2, "big") + parts.counts
    option = ecs_option(ecs) if parts.opt else b""
    return splice(qid, head, question, parts.body, parts.opt, option, max_size)


TRUNCATED = struct.pack("!HHHH", 1, 0, 0, 0)  # the counts of a reply cut to its question
TRUNCATED_WITH_OPT = struct.pack("!HHHH", 1, 0, 0, 1)  # ... and its OPT record


def splice(
    qid: bytes, head: bytes, question: bytes, body: bytes, opt: bytes, option: bytes, max_size: int
) -> bytes:
    """A reply put together: the ID, `head` (flags with the query's RD and CD, and counts),
    the question as sent, the body, and the OPT record (`opt` up to its RDLENGTH, `option`
    its RDLENGTH and options; both b"" without EDNS). One that does not fit `max_size` is the
    question alone (and the OPT record) with TC."""
    if HEADER.size + len(question) + len(body) + len(opt) + len(option) <= max_size:
        return b"".join((qid, head, question, body, opt, option))
    counts = TRUNCATED_WITH_OPT if opt else TRUNCATED
    return b"".join((qid, bytes((head[0] | FLAG_TC >> 8, head[1])), counts, question, opt, option))


def ecs_option(ecs: bytes) -> bytes:
    """An OPT record's RDLENGTH and options for an ECS echo of `ecs` (b"": no options)."""
    if not ecs:
        return b"\x00\x00"
    return struct.pack("!HHH", len(ecs) + 4, OPTION_CODE, len(ecs)) + ecs


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
    ecs = b""
    if query.edns is not None and query.edns.ecs is not None and ecs_scope is not None:
        ecs = query.edns.ecs.reply_option(ecs_scope)
    parts = encode_parts(query, rcode, aa, sections, udp_cap=udp_cap)
    question = DNSBuffer()
    question.encode_name_nocompress(query.qname)
    question.pack("!HH", query.qtype, query.qclass)
    return assemble(
        parts, query.id.to_bytes(2, "big"), query.flags, bytes(question.data), ecs, max_size
    )


def encode_error(exc: WireError, wire: bytes, udp_cap: int) -> bytes | None:
    """The reply for a query that failed to decode or validate.

    It carries the question and an OPT record whenever the query had them and they can be
    read (RFC 6891 §7): a bare header makes resolvers such as dig retry without EDNS.
    """
    if exc.query is not None:
        reply = encode_reply(
            exc.query, exc.rcode, False, ((), (), ()), max_size=65535, udp_cap=udp_cap
        )
        if exc.tsig is None:
            return reply
        arcount = int.from_bytes(reply[10:12], "big") + 1
        return reply[:10] + arcount.to_bytes(2, "big") + reply[12:] + exc.tsig
    if exc.header is None:
        return None
    qid, qflags = exc.header
    shape = layout(wire)
    question = b"" if shape.question_end is None else wire[HEADER.size : shape.question_end]
    if (qflags >> 11) & 0xF == OPCODE_UPDATE and question[-4:-2] != TYPE_SOA_BYTES:
        # An UPDATE's question is its zone section, which must be of type SOA (RFC 2136
        # §2.3); echoed otherwise, it makes a reply that parsers reject (dnspython does).
        question = b""
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
