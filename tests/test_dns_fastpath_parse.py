"""Golden wire vectors for the fast path's hand parser (gslb.dns.fastparse)."""

from __future__ import annotations

import pytest

from gslb.dns.fastparse import EDNS, EDNS_DO, NO_EDNS, parse_query

HEADER_RD = bytes.fromhex("abcd 0100 0001 0000 0000 0000")  # ID abcd, RD, one question
HEADER_AR = bytes.fromhex("abcd 0000 0001 0000 0000 0001")  # no flags, one additional
NAME = bytes.fromhex("03 577777 04 67734c62 07 6578616d706c65 03 636f6d 00")  # Www.gsLb.example.com
NAME_LOWER = NAME.lower()
A_IN = bytes.fromhex("0001 0001")
AAAA_IN = bytes.fromhex("001c 0001")
OPT_1232 = bytes.fromhex("00 0029 04d0 00 00 0000")  # root, OPT, 1232, rcode 0, v0, flags 0
OPT_DO = bytes.fromhex("00 0029 1000 00 00 8000")  # 4096, DO
ECS_24 = bytes.fromhex("0008 0007 0001 18 00 010203")  # 1.2.3.0/24
UNKNOWN_OPT = bytes.fromhex("fde9 0002 6869")  # option 65001, "hi"


def rdlength(options: bytes) -> bytes:
    return len(options).to_bytes(2, "big") + options


def test_plain_query() -> None:
    wire = HEADER_RD + NAME + A_IN
    parsed = parse_query(wire)
    assert parsed is not None
    assert parsed.qend == len(wire)
    assert wire[12 : parsed.qend] == NAME + A_IN  # the question as sent, case kept
    assert parsed.key == NAME_LOWER + b"\x00\x01" + b"\x00"  # name, type, no EDNS
    assert parsed.qtype == 1
    assert (parsed.edns, parsed.udp_size, parsed.ecs) == (NO_EDNS, 512, None)


def test_type_bytes_are_not_lower_cased() -> None:
    # QTYPE 0x0041 (65, HTTPS) must not collide with 0x0061 (97) through bytes.lower().
    upper = parse_query(HEADER_RD + NAME + bytes.fromhex("0041 0001"))
    lower = parse_query(HEADER_RD + NAME + bytes.fromhex("0061 0001"))
    assert upper is not None and lower is not None
    assert upper.key != lower.key
    assert upper.qtype == 65


def test_edns_with_ecs_and_an_unknown_option() -> None:
    options = UNKNOWN_OPT + ECS_24
    wire = HEADER_AR + NAME + AAAA_IN + OPT_1232 + rdlength(options)
    parsed = parse_query(wire)
    assert parsed is not None
    assert (parsed.qtype, parsed.edns, parsed.udp_size) == (28, EDNS, 1232)
    assert parsed.ecs == bytes.fromhex("0001 18 00 010203")
    assert parsed.qend == 12 + len(NAME) + 4


def test_edns_do_without_options() -> None:
    parsed = parse_query(HEADER_AR + NAME + A_IN + OPT_DO + rdlength(b""))
    assert parsed is not None
    assert (parsed.edns, parsed.udp_size, parsed.ecs) == (EDNS_DO, 4096, None)


def test_root_name() -> None:
    parsed = parse_query(HEADER_RD + b"\x00" + bytes.fromhex("0002 0001"))
    assert parsed is not None
    assert parsed.key == b"\x00\x00\x02\x00"


def with_header(header: str, rest: bytes) -> bytes:
    return bytes.fromhex(header) + rest


@pytest.mark.parametrize(
    ("case", "wire"),
    [
        ("too short", HEADER_RD + b"\x00\x00\x01"),
        ("a response", with_header("abcd 8000 0001 0000 0000 0000", NAME + A_IN)),
        ("opcode NOTIFY", with_header("abcd 2000 0001 0000 0000 0000", NAME + A_IN)),
        ("two questions", with_header("abcd 0000 0002 0000 0000 0000", NAME + A_IN * 2)),
        ("no question", with_header("abcd 0000 0000 0000 0000 0000", NAME + A_IN)),
        ("an answer record", with_header("abcd 0000 0001 0001 0000 0000", NAME + A_IN)),
        ("two additional", with_header("abcd 0000 0001 0000 0000 0002", NAME + A_IN)),
        ("compressed name", HEADER_RD + b"\x03www\xc0\x0c" + A_IN),
        ("label type 0x40", HEADER_RD + b"\x43www\x00" + A_IN),
        ("name runs off the end", HEADER_RD + b"\x03www\x04gs"),
        ("no type and class", HEADER_RD + NAME),
        ("class CH", HEADER_RD + NAME + bytes.fromhex("0001 0003")),
        ("trailing bytes", HEADER_RD + NAME + A_IN + b"\x00"),
        (
            "name over 255 bytes",
            HEADER_RD + b"\x3f" + b"a" * 63 + (b"\x3f" + b"b" * 63) * 3 + b"\x00" + A_IN,
        ),
        (
            "additional is not OPT",
            HEADER_AR
            + NAME
            + A_IN
            + bytes.fromhex("00 0001 0001 00000000")
            + rdlength(b"\x01\x02\x03\x04"),
        ),
        ("OPT owner not root", HEADER_AR + NAME + A_IN + b"\x01a" + OPT_1232[1:] + rdlength(b"")),
        (
            "EDNS version 1",
            HEADER_AR + NAME + A_IN + bytes.fromhex("00 0029 04d0 00 01 0000") + rdlength(b""),
        ),
        ("RDLENGTH past the end", HEADER_AR + NAME + A_IN + OPT_1232 + b"\x00\x08" + ECS_24[:4]),
        ("bytes after OPT", HEADER_AR + NAME + A_IN + OPT_1232 + rdlength(b"") + b"\x00"),
        ("option past RDATA", HEADER_AR + NAME + A_IN + OPT_1232 + rdlength(ECS_24[:6])),
        ("two ECS options", HEADER_AR + NAME + A_IN + OPT_1232 + rdlength(ECS_24 + ECS_24)),
        ("OPT cut short", HEADER_AR + NAME + A_IN + OPT_1232[:6]),
    ],
)
def test_unusual_queries_take_the_full_path(case: str, wire: bytes) -> None:
    assert parse_query(wire) is None, case


def test_names_of_exactly_255_bytes_pass() -> None:
    name = (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"b" * 61 + b"\x00"
    assert len(name) == 255
    assert parse_query(HEADER_RD + name + A_IN) is not None
