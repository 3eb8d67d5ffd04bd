"""The raw query layout (gslb/dns/layout.py): what an error reply can echo, read from any bytes."""

from __future__ import annotations

import random
import struct

import dns.message
import pytest

from gslb.dns.layout import OptionError, layout, options


def test_question_and_opt_of_a_normal_query() -> None:
    wire = dns.message.make_query("www.example.com", "A", use_edns=0, payload=1400).to_wire()
    shape = layout(wire)
    assert shape.question_end == len(wire) - 11  # the OPT record is the last 11 bytes
    assert shape.opt is not None and shape.opt.udp_size == 1400 and shape.opt.at_root
    assert shape.opt_count == 1


def test_a_cut_packet_keeps_what_could_be_read() -> None:
    wire = dns.message.make_query("www.example.com", "A", use_edns=0).to_wire()
    shape = layout(wire[:-3])
    assert shape.question_end is not None and shape.opt is None


def test_compressed_question_is_not_echoed() -> None:
    wire = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c" + struct.pack("!HH", 1, 1)
    assert layout(wire).question_end is None


def test_options_must_fill_the_rdata_exactly() -> None:
    assert options(b"\x00\x08\x00\x00") == [(8, b"")]
    for bad in (b"\x00", b"\x00\x08\x00\x05abc", b"\x00\x08\x00\x00\x01"):
        with pytest.raises(OptionError):
            options(bad)


def test_never_raises_on_random_bytes() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        layout(bytes(rng.randrange(256) for _ in range(rng.randrange(40))))
