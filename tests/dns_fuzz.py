"""A seeded mutational corpus of DNS queries and a driver that throws it at a server.

Shared by tests/test_dns_fuzz.py (20,000 packets, in the suite) and bench/dns/fuzz.py
(a million). `corpus(seed, count)` yields packets made from a few valid queries by one of
the mutations below, the same packets for the same seed. `run(...)` sends them in windows,
each window followed by a valid query from another socket (so it shares the server's
receive batch with them), and checks what comes back.
"""

from __future__ import annotations

import os
import random
import select
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import dns.edns
import dns.message
import dns.rcode

NAMES = ("ns1.gslb.example.com", "www.gslb.example.com", "gslb.example.com", "x.test")


def seeds() -> list[bytes]:
    """Valid queries the mutations start from: plain, EDNS, DO, ECS, cookie, several types."""
    out = []
    for name in NAMES:
        for rdtype in ("A", "AAAA", "SOA", "NS", "DS", "TXT", "ANY"):
            out.append(dns.message.make_query(name, rdtype, id=1).to_wire())
        out.append(dns.message.make_query(name, "A", id=2, use_edns=0, want_dnssec=True).to_wire())
        ecs = dns.edns.ECSOption("198.51.100.0", 24)
        out.append(dns.message.make_query(name, "A", id=3, use_edns=0, options=[ecs]).to_wire())
        ecs6 = dns.edns.ECSOption("2001:db8::", 48)
        cookie = dns.edns.GenericOption(10, b"\x01" * 8)
        q = dns.message.make_query(name, "AAAA", id=4, use_edns=0, options=[ecs6, cookie])
        out.append(q.to_wire())
        # A client and server cookie (RFC 9018 form) and an NSID request.
        both = dns.edns.GenericOption(10, b"\x01" * 8 + b"\x01\x00\x00\x00" + b"\x02" * 12)
        nsid = dns.edns.GenericOption(3, b"")
        q = dns.message.make_query(name, "A", id=5, use_edns=0, options=[both, nsid, ecs])
        out.append(q.to_wire())
    return out


def _flip_bits(rng: random.Random, wire: bytearray) -> None:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(wire))
        wire[i] ^= 1 << rng.randrange(8)


def _truncate(rng: random.Random, wire: bytearray) -> None:
    del wire[rng.randrange(len(wire)) :]


def _counts(rng: random.Random, wire: bytearray) -> None:
    at = rng.choice((4, 6, 8, 10))
    value = rng.choice((0, 1, 2, 3, 255, 0xFFFF, rng.randrange(0x10000)))
    wire[at : at + 2] = value.to_bytes(2, "big")


def _label_length(rng: random.Random, wire: bytearray) -> None:
    # Somewhere in the question: a label length byte replaced by a bad one.
    if len(wire) <= 12:
        return
    i = rng.randrange(12, min(len(wire), 40))
    wire[i] = rng.choice((0, 63, 64, 0x3F, 0x7F, 0x80, 0xBF, 0xFF, rng.randrange(256)))


def _long_name(rng: random.Random, wire: bytearray) -> None:
    # A question name of 250 to 260 octets: around the limit of 255.
    target = rng.randint(250, 260)
    name = b""
    while len(name) + 1 < target:
        size = min(63, target - len(name) - 2)
        name += bytes((size,)) + b"a" * size
    wire[12 : _question_end(wire) - 4] = name + b"\x00"


def _compression_loop(rng: random.Random, wire: bytearray) -> None:
    # A pointer to itself, to the header, forward, or two pointers to each other.
    if len(wire) < 14:
        return
    at = rng.choice((12, 12, rng.randrange(12, len(wire) - 1)))
    target = rng.choice((at, 0, at + 2, 12, rng.randrange(0x4000)))
    wire[at : at + 2] = (0xC000 | target).to_bytes(2, "big")
    if rng.random() < 0.3 and at + 4 <= len(wire):
        wire[at + 2 : at + 4] = (0xC000 | at).to_bytes(2, "big")


def _opt_corruption(rng: random.Random, wire: bytearray) -> None:
    # An OPT record with odd options: ECS of any length and content, lengths that overrun.
    base = wire[: _question_end(wire)]
    if len(base) < 12:
        return
    options = b""
    for _ in range(rng.randint(0, 3)):
        code = rng.choice((8, 8, 10, 3, rng.randrange(0x10000)))
        data = rng.randbytes(rng.choice((0, 1, 2, 3, 4, 5, 7, 8, 20, rng.randrange(40))))
        if code == 8 and data and rng.random() < 0.7:
            family = rng.choice((1, 2, 0, 3))
            data = struct.pack("!HBB", family, rng.randrange(140), rng.randrange(140)) + data
        length = len(data) if rng.random() < 0.7 else rng.randrange(0x10000)
        options += struct.pack("!HH", code, length) + data
    rdlength = len(options) if rng.random() < 0.8 else rng.randrange(0x10000)
    ttl = rng.choice((0, 0x8000, 0x00010000, rng.randrange(1 << 32)))
    opt = b"\x00" + struct.pack("!HHIH", 41, rng.randrange(0x10000), ttl, rdlength) + options
    if rng.random() < 0.2:
        opt = opt + opt  # two OPT records
    base[10:12] = (1 if len(opt) == 11 + len(options) else 2).to_bytes(2, "big")
    wire[:] = base + opt


def _random_bytes(rng: random.Random, wire: bytearray) -> None:
    wire[:] = rng.randbytes(rng.randrange(0, 600))
    if rng.random() < 0.5 and len(wire) >= 3:
        wire[2] &= 0x7F  # a query, not a response, so it gets past the first check


def _question_end(wire: bytearray) -> int:
    pos = 12
    while pos < len(wire) and wire[pos] and wire[pos] < 64:
        pos += wire[pos] + 1
    return min(len(wire), pos + 5)


MUTATIONS: tuple[Callable[[random.Random, bytearray], None], ...] = (
    _flip_bits,
    _truncate,
    _counts,
    _label_length,
    _long_name,
    _compression_loop,
    _opt_corruption,
    _random_bytes,
)


def corpus(seed: int, count: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    base = seeds()
    for _ in range(count):
        wire = bytearray(rng.choice(base))
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            if wire:
                rng.choice(MUTATIONS)(rng, wire)
            else:
                _random_bytes(rng, wire)
        yield bytes(wire)


@dataclass
class Outcome:
    sent: int = 0
    replies: int = 0
    unparsable: list[bytes] = field(default_factory=list)
    valid_missed: int = 0
    windows: int = 0
    seconds: float = 0.0


def run(
    host: str,
    port: int,
    packets: Iterator[bytes],
    *,
    window: int = 63,
    pause_pid: int | None = None,
    pause_pids: tuple[int, ...] = (),
    settle: float = 0.0,
) -> Outcome:
    """Send `packets` in windows, each followed by a valid query; `pause_pid` (or each of
    `pause_pids`): stop that process while a window is sent, so the window and its valid
    query are read together. `settle`: after each window, read replies until none came for
    that long (with several workers the valid query's answer can come before the window's)."""
    paused = (pause_pid,) if pause_pid is not None else pause_pids
    fuzz = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for sock in (fuzz, probe):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setblocking(False)
    valid = dns.message.make_query("ns1.gslb.example.com", "A")
    outcome = Outcome()
    started = time.perf_counter()
    try:
        done = False
        while not done:
            batch = []
            for wire in packets:
                batch.append(wire)
                if len(batch) == window:
                    break
            done = len(batch) < window
            if not batch:
                break
            valid.id = outcome.windows & 0xFFFF
            for pid in paused:
                os.kill(pid, signal.SIGSTOP)
            try:
                for wire in batch:
                    fuzz.sendto(wire, (host, port))
                probe.sendto(valid.to_wire(), (host, port))
            finally:
                for pid in paused:
                    os.kill(pid, signal.SIGCONT)
            outcome.sent += len(batch)
            outcome.windows += 1
            if not _await_valid(probe, valid.id):
                outcome.valid_missed += 1
            _collect(fuzz, outcome, wait=settle)
        _collect(fuzz, outcome, wait=0.2)
    finally:
        fuzz.close()
        probe.close()
    outcome.seconds = time.perf_counter() - started
    return outcome


def _await_valid(probe: socket.socket, qid: int) -> bool:
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        if not select.select([probe], [], [], 0.1)[0]:
            continue
        reply = dns.message.from_wire(probe.recv(65535))
        if reply.id == qid:
            return reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)
    return False


def _collect(sock: socket.socket, outcome: Outcome, wait: float = 0.0) -> None:
    while select.select([sock], [], [], wait)[0]:
        wire = sock.recv(65535)
        outcome.replies += 1
        try:
            dns.message.from_wire(wire, keyring=False, ignore_trailing=False)
        except Exception:
            if len(outcome.unparsable) < 20:
                outcome.unparsable.append(wire)
