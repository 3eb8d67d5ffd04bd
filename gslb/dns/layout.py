"""Where a query's parts sit on the wire, read without trusting anything after them.

dnslib parses a whole message or nothing, and skips what it cannot read inside an OPT
record (an option of four bytes or fewer is dropped unseen). Two things need the raw
layout instead: an error reply echoes the question and an OPT record whenever the query
had them (RFC 6891 §7), even when something later in the packet is broken; and EDNS
options are validated strictly, byte for byte, from the OPT record's RDATA.

`layout(wire)` never raises: it reports what it could read and stops at the first part
that does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER_SIZE = 12
TYPE_OPT = 41
MAX_NAME = 255


@dataclass(frozen=True, slots=True)
class Opt:
    udp_size: int
    ttl: int  # extended rcode, version, flags
    rdata: bytes
    at_root: bool
    at: int  # offset of the record (its owner name)
    rdata_at: int  # offset of its RDATA (RDLENGTH is the two bytes before)


@dataclass(frozen=True, slots=True)
class Layout:
    question_end: int | None  # past QTYPE and QCLASS, when the one question can be echoed
    name_length: int  # octets of the question name on the wire (0 when unreadable)
    opt: Opt | None  # the first OPT record of the additional section
    opt_count: int  # OPT records anywhere in the message (only one is allowed)


def skip_name(wire: bytes, pos: int) -> tuple[int, bool]:
    """(offset past the name, whether it is plain labels with no pointer); -1 if cut."""
    size = len(wire)
    while pos < size:
        length = wire[pos]
        if length == 0:
            return pos + 1, True
        if length & 0xC0 == 0xC0:
            return (pos + 2, False) if pos + 2 <= size else (-1, False)
        if length > 63:
            return -1, False  # a reserved label type
        pos += length + 1
    return -1, False


def layout(wire: bytes) -> Layout:
    size = len(wire)
    if size < HEADER_SIZE:
        return Layout(None, 0, None, 0)
    qdcount = int.from_bytes(wire[4:6], "big")
    counts = [int.from_bytes(wire[i : i + 2], "big") for i in (6, 8, 10)]
    pos = HEADER_SIZE
    question_end = None
    name_length = 0
    for index in range(qdcount):
        end, plain = skip_name(wire, pos)
        if end < 0 or end + 4 > size:
            return Layout(question_end, name_length, None, 0)
        if index == 0 and qdcount == 1 and plain and end - pos <= MAX_NAME:
            question_end = end + 4
        if index == 0:
            name_length = end - pos
        pos = end + 4
    opt = None
    opt_count = 0
    records = counts[0] + counts[1] + counts[2]
    additional_from = counts[0] + counts[1]
    for index in range(records):
        end, _ = skip_name(wire, pos)
        if end < 0 or end + 10 > size:
            break
        rtype = int.from_bytes(wire[end : end + 2], "big")
        rdlength = int.from_bytes(wire[end + 8 : end + 10], "big")
        rdata_at = end + 10
        if rdata_at + rdlength > size:
            break
        if rtype == TYPE_OPT:
            opt_count += 1
            if opt is None and index >= additional_from:
                opt = Opt(
                    udp_size=int.from_bytes(wire[end + 2 : end + 4], "big"),
                    ttl=int.from_bytes(wire[end + 4 : end + 8], "big"),
                    rdata=wire[rdata_at : rdata_at + rdlength],
                    at_root=end - pos == 1,
                    at=pos,
                    rdata_at=rdata_at,
                )
        pos = rdata_at + rdlength
    return Layout(question_end, name_length, opt, opt_count)


class OptionError(ValueError):
    """EDNS options that do not fit their OPT record."""


def options(rdata: bytes) -> list[tuple[int, bytes]]:
    """The (code, data) options of an OPT record's RDATA, which they must fill exactly."""
    found = []
    pos = 0
    size = len(rdata)
    while pos < size:
        if pos + 4 > size:
            raise OptionError("EDNS option header overruns the OPT record")
        code = int.from_bytes(rdata[pos : pos + 2], "big")
        length = int.from_bytes(rdata[pos + 2 : pos + 4], "big")
        pos += 4
        if pos + length > size:
            raise OptionError(f"EDNS option {code} overruns the OPT record")
        found.append((code, rdata[pos : pos + length]))
        pos += length
    return found
