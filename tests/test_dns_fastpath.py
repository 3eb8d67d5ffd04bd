"""The fast path answers exactly as the full path does, follows weights, and never serves
an answer that a health change, admin action or reload has made stale."""

from __future__ import annotations

import ipaddress
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gslb.config import load_config
from gslb.dns.answers import AnswerCache
from gslb.dns.responder import Responder
from gslb.geo import GeoDatabase
from gslb.metrics import DnsStats
from gslb.plan import compile_plan
from gslb.runtime import Runtime
from gslb.state import State, View
from tests.conftest import DEMO_DB, write_config

ZONE = """
zone: gslb.example.com
soa: {mname: ns1.gslb.example.com, rname: hostmaster.example.com, minimum: 60}
ns: [ns1.gslb.example.com, ns2.gslb.example.com]
records:
  ns1: {A: [192.0.2.53], AAAA: ["2001:db8::53"]}
  ns2: {A: [198.51.100.53]}
  "@": {MX: ["10 mail.gslb.example.com."], TXT: ["v=spf1 -all"]}
  mail: {A: [192.0.2.25]}
  docs: {CNAME: www.gslb.example.com.}
  mid: {TXT: MIDTXT}
  sub: {NS: [ns.sub.gslb.example.com.]}
  ns.sub: {A: [192.0.2.99]}
services:
  www: {ttl: 30, policy: geo, select: first, answers: 2, regions: [eu, us, ap]}
  hh: {ttl: 30, policy: geo, select: hashed, answers: 1, regions: [eu, us, ap]}
  fo: {ttl: 30, policy: failover, select: first, answers: 1, regions: [eu, us, ap]}
  wt: {ttl: 30, policy: failover, select: weighted, answers: 2, regions: [eu]}
  rr: {ttl: 30, policy: failover, select: all, answers: 1, regions: [eu]}
  wr: {ttl: 30, policy: weighted, select: first, answers: 1, regions: [eu, us]}
"""
HEALTH = "health: {type: http, path: /health, port: 80}"
REGIONS = {
    "eu": f"""
region: eu
location: {{lat: 50, lon: 8}}
serves: {{continents: [EU, AF]}}
weight: 3
{HEALTH}
services:
  www.gslb.example.com: [192.0.2.10, 192.0.2.11, "2001:db8:e::10"]
  hh.gslb.example.com: [192.0.2.12, 192.0.2.13, 192.0.2.14, "2001:db8:e::12", "2001:db8:e::13"]
  fo.gslb.example.com: [192.0.2.15]
  wt.gslb.example.com: [{{address: 192.0.2.16, weight: 3}}, {{address: 192.0.2.17, weight: 1}}]
  rr.gslb.example.com: [192.0.2.18, 192.0.2.19, 192.0.2.20]
  wr.gslb.example.com: [192.0.2.21]
""",
    "us": f"""
region: us
location: {{lat: 39, lon: -77}}
# Operator networks: half of a GeoIP /24 in Europe, and one beside 8.8.8.8's /24.
serves: {{continents: [NA, SA], networks: [81.2.69.128/25, 8.8.4.0/26, "2001:dc3::/33"]}}
{HEALTH}
services:
  www.gslb.example.com: [198.51.100.10, "2001:db8:a::10"]
  hh.gslb.example.com: [198.51.100.12, 198.51.100.13]
  fo.gslb.example.com: [198.51.100.15]
  wr.gslb.example.com: [198.51.100.21]
""",
    "ap": f"""
region: ap
location: {{lat: 1.35, lon: 103.8}}
serves: {{continents: [AS, OC]}}
{HEALTH}
services:
  www.gslb.example.com: [203.0.113.10]
  hh.gslb.example.com: [203.0.113.12]
  fo.gslb.example.com: [203.0.113.15]
""",
}
NAMES = [
    "www", "hh", "fo", "wt", "rr", "wr", "docs", "ns1", "ns2", "@", "mail", "mid",
    "missing", "deep.missing", "host.sub", "ns.sub", "_tcp",
]  # fmt: skip
TYPES = ["A", "AAAA", "MX", "TXT", "SOA", "NS", "CNAME", "ANY", "TYPE99", "AXFR"]
# Addresses the demo database places (several share a location: 8.8.8.0/24 and 8.8.4.0/24
# are both Mountain View; 200.160.0.0/20 is wider than a /24) and some it does not.
CLIENTS_V4 = ["81.2.69.142", "8.8.8.8", "8.8.4.4", "1.1.1.1", "9.9.9.9", "200.160.3.1",
              "202.12.27.33", "77.88.8.8", "100.64.1.1", "203.0.113.7", "45.1.2.3"]  # fmt: skip
CLIENTS_V6 = ["2001:4860:4860::8888", "2620:fe::fe", "2001:dc3::35", "2001:db8::1", "fe80::1"]
PEERS = ["127.0.0.1", "8.8.8.8", "81.2.69.142", "2001:4860::1", "::ffff:9.9.9.9", "::1"]


class FixedRandom(random.Random):
    """Always the same draw, so that random pickers are deterministic on both paths."""

    def random(self) -> float:
        return 0.5

    def randrange(self, *args: object, **kwargs: object) -> int:
        return 0


@dataclass
class Holder:
    """A mutable view, as the runtime keeps it: one reference swapped per change."""

    view: View

    def __call__(self) -> View:
        return self.view


def config_dir(directory: Path) -> Path:
    mid = [f"m{i:02d}" + "y" * 100 for i in range(8)]  # ~850 bytes: fits 1232, not 512
    files = {"gslb.example.com.yaml": ZONE.replace("MIDTXT", repr(mid))}
    files.update({f"regions/{name}.yaml": text for name, text in REGIONS.items()})
    return write_config(directory, files)


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return config_dir(tmp_path_factory.mktemp("fastpath"))


@pytest.fixture(scope="module")
def geo() -> Iterator[GeoDatabase]:
    with GeoDatabase(str(DEMO_DB)) as db:
        yield db


def make_view(plan_dir: Path, state: State | None = None, generation: int = 1) -> View:
    return View(compile_plan(load_config(str(plan_dir)), generation), state or State())


@st.composite
def queries(draw: st.DrawFn) -> tuple[bytes, str]:
    label = draw(st.sampled_from(NAMES))
    name = "gslb.example.com." if label == "@" else f"{label}.gslb.example.com."
    name = "".join(c.upper() if draw(st.booleans()) else c for c in name)
    rdtype = draw(st.sampled_from(TYPES))
    edns = draw(st.sampled_from([-1, 0, 0, 0]))
    options: list[dns.edns.Option] = []
    payload = draw(st.sampled_from([512, 600, 1232, 4096, 100]))
    if edns == 0 and draw(st.booleans()):
        v6 = draw(st.booleans())
        address = draw(st.sampled_from(CLIENTS_V6 if v6 else CLIENTS_V4))
        source = draw(st.sampled_from([0, 16, 20, 24, 32] if not v6 else [0, 32, 48, 56, 128]))
        options.append(dns.edns.ECSOption(address, source))
    if edns == 0 and draw(st.integers(0, 5)) == 0:
        options.append(dns.edns.GenericOption(dns.edns.OptionType.make(65001), b"x"))
    query = dns.message.make_query(
        name,
        rdtype,
        use_edns=edns,
        payload=payload,
        options=options or None,
        want_dnssec=edns == 0 and draw(st.booleans()),
    )
    query.id = draw(st.integers(0, 0xFFFF))
    query.flags = draw(
        st.sampled_from([0, dns.flags.RD, dns.flags.CD, dns.flags.RD | dns.flags.AD])
    )
    wire = bytearray(query.to_wire())
    if options and draw(st.integers(0, 7)) == 0:
        wire[-1] ^= 0x01  # an address bit beyond the prefix (or a wrong byte): FORMERR
    return bytes(wire), draw(st.sampled_from(PEERS))


def test_fast_and_full_paths_agree_byte_for_byte(plan_dir: Path, geo: GeoDatabase) -> None:
    view = make_view(plan_dir)
    fast = Responder(lambda: view, geo, rng=FixedRandom())
    full = Responder(lambda: view, geo, rng=FixedRandom())

    @settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
    @given(queries())
    def check(query: tuple[bytes, str]) -> None:
        wire, peer = query
        for _ in range(3):  # a miss first, then (for cacheable queries) hits
            assert fast.handle_wire(wire, peer) == full.answer_full(wire, peer), wire.hex()

    check()
    assert fast.cache.hits > 500  # the cache was really used
    assert fast.cache.fills > 100


def test_fast_and_full_paths_agree_byte_for_byte_while_the_cache_evicts(
    plan_dir: Path, geo: GeoDatabase
) -> None:
    """The same, with tables so small that nearly every query evicts something: a query
    linked to an evicted answer, or asking again after its entry went, must still get the
    full path's bytes."""
    view = make_view(plan_dir)
    cache = AnswerCache(max_answers=12, max_clients=4, max_bytes=12_000, variants=4)
    fast = Responder(lambda: view, geo, rng=FixedRandom(), cache=cache)
    full = Responder(lambda: view, geo, rng=FixedRandom())

    @settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(queries(), min_size=1, max_size=6))
    def check(batch: list[tuple[bytes, str]]) -> None:
        for _ in range(2):  # interleaved, so each one's entry may be gone the next time
            for wire, peer in batch:
                assert fast.handle_wire(wire, peer) == full.answer_full(wire, peer), wire.hex()
        assert cache.size <= 12 and len(cache.static) + len(cache.steered) <= 12
        assert cache.static.bytes + cache.steered.bytes <= (cache.answer_bytes or 0)
        assert len(cache.clients) <= 4 and len(cache.queries) <= 12

    check()
    assert cache.hits > 500
    evicted = cache.static.evictions + cache.steered.evictions + cache.queries.evictions
    assert evicted > 500  # the tables really evicted, many times


@st.composite
def steered_queries(draw: st.DrawFn) -> bytes:
    """A steered question from any IPv4 network (most of them new to the memo)."""
    label = draw(st.sampled_from(["www", "hh", "fo", "wt", "wr", "docs"]))
    address = draw(st.ip_addresses(v=4))
    source = draw(st.integers(0, 32))
    network = ipaddress.ip_network(f"{address}/{source}", strict=False).network_address
    query = dns.message.make_query(
        f"{label}.gslb.example.com.",
        draw(st.sampled_from(["A", "AAAA"])),
        use_edns=0,
        options=[dns.edns.ECSOption(str(network), source)],
        want_dnssec=draw(st.booleans()),
    )
    query.id = draw(st.integers(0, 0xFFFF))
    return query.to_wire()


def test_answers_shared_between_networks_keep_each_ones_bytes(
    plan_dir: Path, geo: GeoDatabase
) -> None:
    """Networks that rank the regions alike (or hash alike) share one memo entry; each gets
    its own ECS echo and scope, byte for byte what the full path gives it."""
    view = make_view(plan_dir)
    fast = Responder(lambda: view, geo, rng=FixedRandom())
    full = Responder(lambda: view, geo, rng=FixedRandom())

    @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
    @given(steered_queries())
    def check(wire: bytes) -> None:
        for _ in range(2):
            assert fast.handle_wire(wire, "127.0.0.1") == full.answer_full(wire, "127.0.0.1")

    check()
    assert len(fast.cache.clients) > 100  # many networks ...
    assert len(fast.cache.steered) + len(fast.cache.static) < len(fast.cache.clients)  # ... few


def test_a_network_that_ranks_like_one_seen_costs_no_decision(
    plan_dir: Path, geo: GeoDatabase
) -> None:
    """8.8.8.0/24 and 8.8.4.0/24 are placed apart (8.8.4.0/26 is an operator network of us)
    but rank the regions alike: the second one's first query is answered from the memo."""
    view = make_view(plan_dir)
    responder = Responder(lambda: view, geo, rng=FixedRandom())
    cache = responder.cache

    def wire(name: str, client: str) -> bytes:
        options = [dns.edns.ECSOption(client, 24)]
        return dns.message.make_query(name, "A", use_edns=0, options=options).to_wire()

    responder.handle_wire(wire("www.gslb.example.com", "8.8.8.0"), "127.0.0.1")
    fills, hits = cache.fills, cache.hits
    for name in ("www.gslb.example.com", "WWW.gslb.example.COM"):
        query = wire(name, "8.8.4.0")
        assert responder.handle_wire(query, "127.0.0.1") == responder.answer_full(
            query, "127.0.0.1"
        )
    assert len(cache.clients) == 2
    assert (cache.fills, cache.hits) == (fills, hits + 2)


def test_a_burst_of_new_names_does_not_throw_away_the_hot_answers(
    plan_dir: Path, geo: GeoDatabase
) -> None:
    """Popular questions asked between thousands of one-off names stay answered from the
    cache: with the tables emptied whole when full, each emptying cost every hot question
    a full-path answer again."""
    view = make_view(plan_dir)
    cache = AnswerCache(max_answers=200, max_clients=50)
    responder = Responder(lambda: view, geo, rng=FixedRandom(), cache=cache)
    hot = [
        dns.message.make_query(f"{label}.gslb.example.com", rdtype, use_edns=0).to_wire()
        for label in ("www", "fo", "ns1", "mail", "docs")
        for rdtype in ("A", "AAAA")
    ]
    for wire in hot:
        responder.handle_wire(wire, "192.0.2.1")
    fills = cache.fills
    for i in range(5000):
        # DO set: each keeps its own answer (names that do not exist share one without it).
        one_off = dns.message.make_query(f"x{i}.gslb.example.com", "A", want_dnssec=True)
        responder.handle_wire(one_off.to_wire(), "192.0.2.1")
        wire = hot[i % len(hot)]
        assert responder.handle_wire(wire, "192.0.2.1") == responder.answer_full(wire, "192.0.2.1")
    assert cache.fills - fills == 5000  # one per one-off name, none for the hot questions
    assert cache.static.evictions > 4000


def test_names_that_do_not_exist_share_one_answer_per_zone_type_and_edns(
    plan_dir: Path, geo: GeoDatabase
) -> None:
    """A thousand names that do not exist cost one full-path answer per (type, EDNS), not one
    each; with DO set each keeps its own (a signed denial names the question)."""
    view = make_view(plan_dir)
    responder = Responder(lambda: view, geo, rng=FixedRandom())
    cache = responder.cache
    for do in (False, True):
        fills = cache.fills
        shapes = set()  # what a shared answer is keyed by: parent, first label's length, type
        for i in range(1000):
            name = f"Nx{i}.Missing.gslb.example.com" if i % 2 else f"nx-{i}.gslb.example.com"
            rdtype = ("A", "AAAA", "MX")[i % 3]
            first, parent = name.lower().split(".", 1)
            shapes.add((parent, len(first), rdtype))
            subnet = [dns.edns.ECSOption(f"81.2.{i % 200}.0", 24)] if i % 4 == 0 else []
            query = dns.message.make_query(
                name, rdtype, use_edns=0, want_dnssec=do, options=subnet or None
            )
            wire = query.to_wire()
            assert responder.handle_wire(wire, "192.0.2.1") == responder.answer_full(
                wire, "192.0.2.1"
            )
        assert cache.fills - fills == (1000 if do else len(shapes))
    assert len(shapes) < 25
    odd = dns.message.make_query(r"a\.b.gslb.example.com", "A").to_wire()  # not a plain name
    assert responder.handle_wire(odd, "192.0.2.1") == responder.answer_full(odd, "192.0.2.1")


def ask(responder: Responder, name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    wire = responder.handle_wire(query.to_wire(), "127.0.0.1")
    assert wire is not None
    return dns.message.from_wire(wire)


def addresses(reply: dns.message.Message) -> list[str]:
    return [rd.to_text() for rrset in reply.answer for rd in rrset]


def test_shared_answer_for_one_location_keeps_each_networks_scope(
    plan_dir: Path, geo: GeoDatabase
) -> None:
    view = make_view(plan_dir)
    responder = Responder(lambda: view, geo)
    for client, prefix, scope in (
        ("8.8.8.0", 24, 24),
        ("8.8.4.0", 24, 24),
        ("200.160.1.0", 24, 20),
    ):
        for _ in range(2):
            reply = ask(
                responder, "www.gslb.example.com", use_edns=0,
                options=[dns.edns.ECSOption(client, prefix)],
            )  # fmt: skip
            assert addresses(reply)[0].startswith("198.51.100."), client  # NA, SA: the us region
            (option,) = reply.options
            assert isinstance(option, dns.edns.ECSOption)
            assert (option.address, option.srclen, option.scopelen) == (client, prefix, scope)


def first_addresses(responder: Responder, name: str, count: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    base = dns.message.make_query(name, "A", use_edns=0).to_wire()
    for i in range(count):
        wire = (i & 0xFFFF).to_bytes(2, "big") + base[2:]
        reply = responder.handle_wire(wire, "127.0.0.1")
        assert reply is not None and reply[:2] == wire[:2]
        seen[addresses(dns.message.from_wire(reply))[0]] += 1
    return seen


def test_weighted_answers_follow_their_weights_across_queries(
    plan_dir: Path, geo: GeoDatabase
) -> None:
    view = make_view(plan_dir)
    # A fresh draw every 8 hits (the default is rarer) to keep the test short.
    responder = Responder(
        lambda: view, geo, rng=random.Random(7), cache=AnswerCache(refresh_every=8)
    )
    count = 20_000
    firsts = first_addresses(responder, "wt.gslb.example.com", count)
    assert set(firsts) == {"192.0.2.16", "192.0.2.17"}
    assert abs(firsts["192.0.2.16"] / count - 0.75) < 0.06, firsts  # weights 3:1
    assert responder.cache.hits > 0.8 * count  # ... and most of them answered from the cache
    rotated = first_addresses(responder, "rr.gslb.example.com", count)  # select: all
    assert set(rotated) == {"192.0.2.18", "192.0.2.19", "192.0.2.20"}
    assert all(abs(n / count - 1 / 3) < 0.06 for n in rotated.values()), rotated
    regions = first_addresses(responder, "wr.gslb.example.com", count)  # policy: weighted
    assert abs(regions["192.0.2.21"] / count - 0.75) < 0.06, regions  # region weights 3:1


def test_random_answers_fill_their_draws_then_redraw_every_thousandth_hit(
    plan_dir: Path, geo: GeoDatabase
) -> None:
    view = make_view(plan_dir)
    responder = Responder(lambda: view, geo, rng=random.Random(3))  # the default cache
    cache = responder.cache
    base = dns.message.make_query("wt.gslb.example.com", "A", use_edns=0).to_wire()
    drawn_at = []
    for i in range(3_200):
        before = cache.fills
        reply = responder.handle_wire((i & 0xFFFF).to_bytes(2, "big") + base[2:], "127.0.0.1")
        assert reply is not None
        if cache.fills > before:
            drawn_at.append(i)
    # The first 128 queries are each a draw by the full path; after that, every 1000th hit
    # is a fresh draw (replacing the oldest) and every other one is served from the cache.
    assert drawn_at == [*range(128), 1127, 2127, 3127]
    (entry,) = cache.steered.values()
    assert len(entry.variants) == cache.variants == 128
    assert cache.hits == 3_200 - len(drawn_at)


def test_health_admin_and_reload_are_seen_by_the_very_next_answer(
    plan_dir: Path, geo: GeoDatabase
) -> None:
    holder = Holder(make_view(plan_dir))
    responder = Responder(holder, geo)
    for _ in range(3):
        assert addresses(ask(responder, "fo.gslb.example.com")) == ["192.0.2.15"]
    assert addresses(ask(responder, "ns1.gslb.example.com")) == ["192.0.2.53"]
    static_entries = len(responder.cache.static)

    state = holder.view.state.with_health("eu/192.0.2.15", up=False)
    holder.view = View(holder.view.plan, state)
    assert addresses(ask(responder, "fo.gslb.example.com")) == ["198.51.100.15"]
    assert len(responder.cache.static) == static_entries  # static answers outlive health

    state = state.with_admin(state.admin.with_region("us", "disabled"))
    holder.view = View(holder.view.plan, state)
    assert addresses(ask(responder, "fo.gslb.example.com")) == ["203.0.113.15"]

    state = state.with_admin(state.admin.with_region("us", "enabled")).with_health(
        "eu/192.0.2.15", up=True
    )
    holder.view = View(holder.view.plan, state)
    assert addresses(ask(responder, "fo.gslb.example.com")) == ["192.0.2.15"]

    zone = plan_dir / "gslb.example.com.yaml"
    original = zone.read_text()
    try:
        zone.write_text(original.replace("[192.0.2.53]", "[192.0.2.54]"))
        holder.view = make_view(plan_dir, state, generation=2)
    finally:
        zone.write_text(original)
    assert addresses(ask(responder, "ns1.gslb.example.com")) == ["192.0.2.54"]


def test_every_answer_is_observed_cached_or_not(plan_dir: Path, geo: GeoDatabase) -> None:
    view = make_view(plan_dir)
    fast_seen, full_seen = DnsStats(), DnsStats()
    fast = Responder(lambda: view, geo, rng=FixedRandom(), observer=fast_seen)
    full = Responder(lambda: view, geo, rng=FixedRandom(), observer=full_seen)
    ecs: list[dns.edns.Option] = [dns.edns.ECSOption("81.2.69.0", 24)]
    questions = [("www", "A"), ("www", "AAAA"), ("missing", "A"), ("ns1", "A"), ("hh", "A")]
    for _ in range(5):
        for label, rdtype in questions:
            wire = dns.message.make_query(
                f"{label}.gslb.example.com", rdtype, use_edns=0, options=ecs
            ).to_wire()
            fast.handle_wire(wire, "127.0.0.1")
            full.answer_full(wire, "127.0.0.1")
    assert fast.cache.hits >= 15
    fast_seen.fold()
    assert fast_seen.queries == full_seen.queries
    assert sum(fast_seen.queries.values()) == 25
    assert fast_seen.answers == full_seen.answers
    # London: the EU region, for www A and AAAA and for hh A.
    assert fast_seen.answers == {
        ("www.gslb.example.com.", "eu"): 10,
        ("hh.gslb.example.com.", "eu"): 5,
    }
    assert fast_seen.endpoint_answers == full_seen.endpoint_answers
    assert sum(fast_seen.latency.counts) == sum(full_seen.latency.counts) == 25


def test_truncation_is_decided_per_query(plan_dir: Path, geo: GeoDatabase) -> None:
    view = make_view(plan_dir)
    responder = Responder(lambda: view, geo)
    for _ in range(2):
        big = ask(responder, "mid.gslb.example.com", "TXT", use_edns=0, payload=4096)
        assert not big.flags & dns.flags.TC and len(big.answer[0]) == 8
    small = ask(responder, "mid.gslb.example.com", "TXT", use_edns=0, payload=512)
    assert small.flags & dns.flags.TC and not small.answer
    plain = ask(responder, "mid.gslb.example.com", "TXT")
    assert plain.flags & dns.flags.TC


def test_the_cache_stays_within_its_bounds(plan_dir: Path, geo: GeoDatabase) -> None:
    view = make_view(plan_dir)
    cache = AnswerCache(max_answers=50, max_clients=20)
    responder = Responder(lambda: view, geo, cache=cache)
    for i in range(300):
        reply = ask(
            responder, f"n{i}.missing.gslb.example.com", use_edns=0,
            options=[dns.edns.ECSOption(f"45.{i % 250}.{i // 250}.0", 24)],
        )  # fmt: skip
        assert reply.rcode() == 3  # NXDOMAIN, from cache or not
        assert cache.size <= 50 and len(cache.static) + len(cache.steered) <= 50
        assert len(cache.clients) <= 20


def test_the_ranking_key_covers_everything_ranking_reads() -> None:
    """Answers are keyed by the region order a ranking memoized per place gives: the place
    must hold every field ranking reads, and not the prefix (spliced in as the scope)."""
    from ipaddress import ip_address

    from gslb.geo import Location
    from gslb.select import Client
    from gslb.select.classify import place

    def key(country: str, continent: str, lat: float, lon: float, prefix: int) -> object:
        loc = Location(country, continent, lat, lon, prefix, "")
        return place(Client(ip_address("192.0.2.1"), 24, loc, prefix))

    base = key("US", "NA", 37.0, -122.0, 16)
    assert key("US", "NA", 37.0, -122.0, 20) == base
    others = [
        key("CA", "NA", 37.0, -122.0, 16),
        key("US", "SA", 37.0, -122.0, 16),
        key("US", "NA", 38.0, -122.0, 16),
        key("US", "NA", 37.0, -121.0, 16),
    ]
    assert len({base, *others}) == 5


def test_the_cache_size_comes_from_dns_cache_entries(tmp_path: Path) -> None:
    directory = config_dir(tmp_path)
    (directory / "gslb.yaml").write_text("dns:\n  listen: '127.0.0.1:0'\n  cache_entries: 5000\n")
    runtime = Runtime(str(directory))
    cache = runtime.responder.cache
    assert (cache.max_answers, cache.max_clients) == (5000, 5000)
    assert cache.max_bytes == 256_000_000  # dns.cache_memory's default


def test_the_cache_memory_comes_from_dns_cache_memory(tmp_path: Path) -> None:
    directory = config_dir(tmp_path)
    (directory / "gslb.yaml").write_text("dns:\n  listen: '127.0.0.1:0'\n  cache_memory: 64MiB\n")
    cache = Runtime(str(directory)).responder.cache
    assert cache.max_bytes == 64 * 2**20
    assert cache.answer_bytes is not None and cache.queries.max_bytes is not None
    assert cache.answer_bytes + cache.queries.max_bytes < 64 * 2**20  # shares of the whole


def test_a_failing_cached_answer_falls_back_to_the_full_path(
    plan_dir: Path, geo: GeoDatabase
) -> None:
    view = make_view(plan_dir)
    responder = Responder(lambda: view, geo, rng=FixedRandom())
    wire = dns.message.make_query("wt.gslb.example.com", "A", use_edns=0).to_wire()
    for _ in range(3):
        responder.handle_wire(wire, "127.0.0.1")
    (known,) = (k for k in responder.cache.queries.values() if k.random)
    known.entry = None  # a broken link: the cached path fails on it
    assert responder.answer_cached(wire) is None  # no exception escapes
    reply = responder.handle_wire(wire, "127.0.0.1")
    assert reply == responder.answer_full(wire, "127.0.0.1")


def test_every_table_the_query_path_fills_stays_bounded(plan_dir: Path, geo: GeoDatabase) -> None:
    """Distinct names (NXDOMAIN each), distinct ECS networks and distinct resolvers: no table
    of the answer cache grows past its configured size."""
    view = make_view(plan_dir)
    cache = AnswerCache(max_answers=50, max_clients=40)
    responder = Responder(lambda: view, geo, cache=cache)
    rng = random.Random(3)
    for i in range(600):
        subnet = dns.edns.ECSOption(f"{rng.randrange(1, 223)}.{i % 256}.{i // 256}.0", 24)
        name = f"n{i}.gslb.example.com" if i % 2 else "www.gslb.example.com"
        query = dns.message.make_query(name, "A", use_edns=0, options=[subnet])
        reply = responder.handle_wire(query.to_wire(), f"127.0.{i % 256}.{i // 256 + 1}")
        assert reply is not None
        assert len(cache.questions) <= 50
        assert len(cache.queries) <= 50
        assert cache.size <= 50
        assert len(cache.clients) <= 40
        assert len(cache.rankings) <= 40
