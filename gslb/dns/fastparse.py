"""The hot path's query parser: header, question, OPT and ECS by hand, nothing else.

`parse_query(wire)` accepts only the common query and returns None for everything else,
which then takes the full dnslib path (codec.decode_query) and gets the same handling as
before: FORMERR, NOTIMP, BADVERS, or a normal answer for unusual but valid queries. It
never raises and never validates more than it must: whatever it lets through is later
answered either from the cache or by the full path itself, and a cached answer is only
ever made by the full path from a query of the same shape.

What passes: a query (QR clear) with opcode QUERY, exactly one question and nothing in the
answer and authority sections; an uncompressed question name of at most 255 bytes and class
IN; no additional record, or exactly one OPT record of EDNS version 0 at the root that ends
the packet, whose options parse as (code, length, data) and hold ECS at most once (and
a COOKIE, of a length a cookie can have, at most once). The ECS
data is returned raw; the responder validates it (gslb.dns.ecs) before using it.
"""

from __future__ import annotations

from typing import NamedTuple

NO_EDNS, EDNS, EDNS_DO = 0, 1, 2  # `Parsed.edns`: the reply's OPT record differs in each
ECS_CODE = 8
COOKIE_CODE = 10
ZONE_TRANSFERS = (251, 252)  # IXFR, AXFR
COUNTS_OF_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00"  # QDCOUNT 1, ANCOUNT 0, NSCOUNT 0
MAX_NAME = 255
KEY_NO_EDNS, KEY_EDNS, KEY_EDNS_DO = b"\x00", b"\x01", b"\x02"


class Parsed(NamedTuple):
    """What the fast path needs from a query; the rest it copies from the wire.

    A function of the bytes from ARCOUNT on (`wire[10:]`) alone, once `is_plain_query`
    holds; the responder memoizes it by the bytes after the ID, which include those.
    """

    qend: int  # offset just past the question: wire[12:qend] is the question as sent
    key: bytes  # the question name's wire form in lower case, QTYPE, and the `edns` byte
    qtype: int
    edns: int  # NO_EDNS, EDNS or EDNS_DO
    udp_size: int  # the OPT record's payload size; 512 without EDNS
    ecs: bytes | None  # the ECS option's data as sent


def is_plain_query(wire: bytes) -> bool:
    """A query (QR clear) with opcode QUERY, one question and no answer or authority records."""
    return len(wire) >= 17 and not wire[2] & 0xF8 and wire[4:10] == COUNTS_OF_ONE_QUESTION


def parse_query(wire: bytes) -> Parsed | None:
    """The parsed query, or None when it should take the full path."""
    if not is_plain_query(wire):  # also long enough for a header, root name, type and class
        return None
    size = len(wire)
    arcount = (wire[10] << 8) | wire[11]
    if arcount > 1:
        return None
    pos = 12
    length = wire[pos]
    while length:
        if length > 63:  # a compression pointer or a reserved label type
            return None
        pos += length + 1
        if pos >= size:
            return None
        length = wire[pos]
    if pos - 11 > MAX_NAME:
        return None
    qend = pos + 5
    if qend > size or wire[pos + 3] != 0 or wire[pos + 4] != 1:  # class IN only
        return None
    qtype = (wire[pos + 1] << 8) | wire[pos + 2]
    if qtype in ZONE_TRANSFERS:
        return None  # answered by transport (NOTIMP over UDP), so never from the cache
    # Lower case only the name: bytes.lower() would change type bytes 0x41-0x5a too.
    name = wire[12 : pos + 1].lower()
    if arcount == 0:
        if qend != size:
            return None
        return Parsed(qend, name + wire[pos + 1 : pos + 3] + KEY_NO_EDNS, qtype, NO_EDNS, 512, None)
    return _with_opt(wire, qend, name + wire[pos + 1 : pos + 3], qtype)


def _with_opt(wire: bytes, qend: int, key: bytes, qtype: int) -> Parsed | None:
    size = len(wire)
    pos = qend
    # Root owner (one zero byte), TYPE 41, CLASS = payload size, TTL = ext-rcode, version,
    # flags; then RDLENGTH.
    if size < pos + 11 or wire[pos] != 0 or wire[pos + 1] != 0 or wire[pos + 2] != 41:
        return None
    udp_size = (wire[pos + 3] << 8) | wire[pos + 4]
    if wire[pos + 6] != 0:  # EDNS version: anything else gets BADVERS from the full path
        return None
    edns = EDNS_DO if wire[pos + 7] & 0x80 else EDNS
    key += KEY_EDNS_DO if edns == EDNS_DO else KEY_EDNS
    rdlength = (wire[pos + 9] << 8) | wire[pos + 10]
    pos += 11
    if pos + rdlength != size:
        return None
    ecs = None
    cookie = False
    while pos < size:
        if pos + 4 > size:
            return None
        code = (wire[pos] << 8) | wire[pos + 1]
        length = (wire[pos + 2] << 8) | wire[pos + 3]
        pos += 4
        if pos + length > size:
            return None
        if code == ECS_CODE:
            if ecs is not None or length < 4:  # the full path answers FORMERR
                return None
            ecs = wire[pos : pos + length]
        elif code == COOKIE_CODE:
            # A length no cookie can have, or two cookies: the full path answers FORMERR.
            if cookie or not (length == 8 or 16 <= length <= 40):
                return None
            cookie = True
        pos += length
    return Parsed(qend, key, qtype, edns, udp_size, ecs)
