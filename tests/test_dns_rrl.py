"""Response rate limiting: the pure limiter (gslb/dns/rrl.py) with a fake clock, then a
real `gslb serve` flooded over UDP while another client is answered in full."""

from __future__ import annotations

import ipaddress
import select
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import pytest

from gslb.dns.rrl import RateLimiter, response_kind, truncated
from gslb.model import RateLimitSettings
from tests.conftest import Served, copy_sample, start_serve


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reply_for(name: str, rcode: int = 0, soa_zone: str | None = None) -> bytes:
    query = dns.message.make_query(name, "A")
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    if soa_zone is not None:
        response.authority.append(
            dns.rrset.from_text(soa_zone, 60, "IN", "SOA", f"ns1.{soa_zone} h.{soa_zone} 1 2 3 4 5")
        )
    return response.to_wire(max_size=65535)


def limiter(clock: Clock, **changes: Any) -> RateLimiter:
    settings = RateLimitSettings(responses_per_second=10, window=2.0, slip=2, exempt=())
    return RateLimiter(replace(settings, **changes), clock)


def outcomes(rrl: RateLimiter, peer: str, reply: bytes, n: int) -> list[str]:
    out = []
    for _ in range(n):
        sent = rrl.filter(peer, reply)
        out.append("sent" if sent == reply else "slip" if sent is not None else "drop")
    return out


def test_a_burst_of_rate_times_window_then_slip_every_second() -> None:
    clock = Clock()
    rrl = limiter(clock)
    reply = reply_for("www.example.com")
    got = outcomes(rrl, "192.0.2.1", reply, 26)
    assert got[:20] == ["sent"] * 20  # 10/s x 2 s
    assert got[20:] == ["drop", "slip"] * 3
    assert rrl.counts == {"drop": 3, "slip": 3}
    clock.now += 0.5  # refilled at 10/s: five more
    assert outcomes(rrl, "192.0.2.1", reply, 6) == ["sent"] * 5 + ["drop"]


def test_accounts_are_per_client_block_and_per_kind() -> None:
    clock = Clock()
    rrl = limiter(clock)
    www = reply_for("www.example.com")
    outcomes(rrl, "192.0.2.1", www, 20)
    assert rrl.filter("192.0.2.200", www) is not www  # same /24: the same account
    assert rrl.filter("198.51.100.1", www) == www  # another block
    assert rrl.filter("192.0.2.1", reply_for("api.example.com")) is not None  # another name


def test_nxdomain_is_one_account_per_zone_and_errors_one_per_client() -> None:
    clock = Clock()
    rrl = limiter(clock, slip=0)
    nx = [reply_for(f"r{i}.example.com", 3, "example.com.") for i in range(25)]
    assert {response_kind(r) for r in nx} == {response_kind(nx[0])}
    got = [rrl.filter("192.0.2.1", r) for r in nx]
    assert sum(r is not None for r in got) == 20  # random names share the zone's account
    refused = [reply_for(f"q{i}.other.test", 5) for i in range(25)]
    assert sum(rrl.filter("192.0.2.1", r) is not None for r in refused) == 20


def test_exempt_networks_and_the_bounded_table() -> None:
    clock = Clock()
    rrl = limiter(clock, exempt=(ipaddress.ip_network("192.0.2.0/24"),), max_accounts=1000)
    www = reply_for("www.example.com")
    assert outcomes(rrl, "192.0.2.9", www, 100) == ["sent"] * 100
    for i in range(20_000):
        rrl.filter(f"10.{i // 256 % 256}.{i % 256}.1", www)
        assert len(rrl) <= 1000


def test_a_flood_of_new_sources_does_not_reset_a_limited_client() -> None:
    """A full table evicts accounts that are not being limited (as BIND's RRL keeps its
    penalized entries), so spoofing many new sources cannot refill a limited one's bucket."""
    clock = Clock()
    rrl = limiter(clock, slip=0, max_accounts=1000)
    www = reply_for("www.example.com")
    assert outcomes(rrl, "192.0.2.1", www, 25) == ["sent"] * 20 + ["drop"] * 5
    seen = []
    for i in range(20_000):  # twenty tables' worth of new client blocks
        rrl.filter(f"10.{i // 256 % 256}.{i % 256}.1", www)
        assert len(rrl) <= 1000
        if i % 2000 == 0:
            seen += outcomes(rrl, "192.0.2.1", www, 1)
    assert seen == ["drop"] * 10
    clock.now += 0.5  # and it refills as before: five more
    assert outcomes(rrl, "192.0.2.1", www, 6) == ["sent"] * 5 + ["drop"]


def test_a_limited_client_keeps_its_account_while_it_pauses() -> None:
    clock = Clock()
    rrl = limiter(clock, slip=0, max_accounts=1000)
    www = reply_for("www.example.com")
    outcomes(rrl, "192.0.2.1", www, 25)  # limited, then silent while 5,000 others come
    for i in range(5000):
        rrl.filter(f"10.{i // 256 % 256}.{i % 256}.1", www)
    assert outcomes(rrl, "192.0.2.1", www, 1) == ["drop"]


def test_the_peer_memo_is_bounded_and_keeps_the_hot_peers() -> None:
    rrl = RateLimiter(
        RateLimitSettings(responses_per_second=1e6, exempt=()), Clock(), max_peers=100
    )
    www = reply_for("www.example.com")
    hot = [f"192.0.2.{i}" for i in range(10)]
    for peer in hot:
        rrl.filter(peer, www)
    computed = rrl.blocks_computed
    for i in range(2000):
        rrl.filter(f"10.0.{i // 250}.{i % 250}", www)
        assert rrl.peers_cached <= 100
        if i % 20 == 0:
            for peer in hot:
                rrl.filter(peer, www)
    assert rrl.blocks_computed - computed == 2000  # the hot peers never needed it again


def test_the_slip_reply_is_truncated_and_no_larger_than_the_query() -> None:
    query = dns.message.make_query("www.example.com", "TXT")
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("www.example.com.", 60, "IN", "TXT", '"x"' * 50))
    slip = dns.message.from_wire(truncated(response.to_wire()))
    assert slip.flags & dns.flags.TC and not slip.answer
    assert slip.question == query.question
    assert len(truncated(response.to_wire())) <= len(query.to_wire())


# --- a real server ----------------------------------------------------------------------

RATE = 10


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    zones = copy_sample(tmp_path_factory.mktemp("rrl"))
    settings = zones / "gslb.yaml"
    settings.write_text(
        settings.read_text().replace(
            "rate_limit: {responses_per_second: 20, window: 5s, slip: 2, exempt: [127.0.0.0/8]}",
            f"rate_limit: {{responses_per_second: {RATE}, window: 1s, slip: 2, exempt: []}}",
        )
    )
    server = start_serve(zones)
    yield server
    server.stop()


def flood(served: Served, source: str, count: int) -> tuple[int, int, int, int]:
    """(answers, slips, bytes in, bytes out) for `count` queries sent at once from `source`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((source, 0))
    answers = slips = bytes_in = bytes_out = 0
    try:
        for i in range(count):
            wire = dns.message.make_query("www.gslb.example.com", "A", id=i).to_wire()
            sock.sendto(wire, ("127.0.0.1", served.dns_port))
            bytes_in += len(wire)
        while select.select([sock], [], [], 1.0)[0]:
            reply = sock.recv(65535)
            bytes_out += len(reply)
            if dns.message.from_wire(reply).flags & dns.flags.TC:
                slips += 1
            else:
                answers += 1
    finally:
        sock.close()
    return answers, slips, bytes_in, bytes_out


def test_a_flood_is_limited_and_another_client_is_answered(served: Served) -> None:
    answers, slips, bytes_in, bytes_out = flood(served, "127.0.0.2", 400)
    assert answers <= RATE + 5  # the burst, and what refilled while the flood lasted
    assert 150 <= slips <= 210  # every second limited reply goes out truncated
    assert bytes_out <= bytes_in  # no amplification
    other = [flood(served, "127.0.1.2", 1)[0] for _ in range(RATE)]
    assert other == [1] * RATE  # another /24: its own account, every answer
    with urllib.request.urlopen(f"http://127.0.0.1:{served.api_port}/metrics") as response:
        text = response.read().decode()
    drops = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith('gslb_dns_rate_limited_total{action="drop"}')
    )
    assert drops >= 150
