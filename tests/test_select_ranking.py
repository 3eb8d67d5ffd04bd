"""Region ranking over compiled plans: geo, failover and weighted policies, unusable
regions and endpoints, fail-open, and the address family of the question."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from gslb.config import load_config
from gslb.plan import TYPE_A, TYPE_AAAA, Plan, compile_plan
from gslb.select import NOERROR, Client, Decision, select
from gslb.state import State
from tests.conftest import write_config
from tests.select_builders import client, fqdn, make_plan, region, service, state

TYPE_MX = 15
WWW = fqdn("www")

# Three regions like the sample's; each answers `www` with one IPv4 and one IPv6 address.
EU = region(
    "eu",
    {"www": ["198.51.100.10", "2001:db8:e::10"]},
    lat=53.35,
    lon=-6.26,
    continents=["EU", "AF"],
    countries=["TR"],
)
US = region(
    "us", {"www": ["192.0.2.10", "2001:db8:a::10"]}, lat=39.04, lon=-77.49, continents=["NA", "SA"]
)
AP = region(
    "ap", {"www": ["203.0.113.10", "2001:db8:5::10"]}, lat=1.35, lon=103.82, continents=["AS", "OC"]
)
# Where the default (listed) order differs from every geographic answer.
DEFAULT_ORDER = ["us", "ap", "eu"]
REGION_OF = {"198.51.100.10": "eu", "192.0.2.10": "us", "203.0.113.10": "ap"}


def geo_plan(**kwargs: object) -> Plan:
    return make_plan([service("www", DEFAULT_ORDER, policy="geo", **kwargs)], [EU, US, AP])  # type: ignore[arg-type]


def ask(
    plan: Plan,
    who: Client,
    st: State | None = None,
    qtype: int = TYPE_A,
    name: str = WWW,
    seed: int = 1,
) -> Decision:
    return select(plan, st or State(), name, qtype, who, random.Random(seed))


def region_of(decision: Decision) -> str | None:
    assert decision.steering is not None
    return decision.steering.region


def addresses(decision: Decision) -> list[str]:
    return [str(rd) for rrset in decision.answer for rd in rrset.rdatas]


GEO_CASES = [
    # (what, client, expected region order)
    ("continent EU", client("81.2.69.1", country="GB", continent="EU", lat=51.5, lon=-0.09), "eu"),
    ("continent NA", client("8.8.8.8", country="US", continent="NA", lat=37.4, lon=-122.1), "us"),
    ("continent OC", client("1.1.1.1", country="AU", continent="OC", lat=-27.5, lon=153.0), "ap"),
    # Turkey is in Asia, but eu-west lists the country: the country mapping wins.
    (
        "country beats continent",
        client("5.1.1.1", country="TR", continent="AS", lat=41, lon=29),
        "eu",
    ),
    # Placed at Singapore's coordinates, yet the continent mapping says EU.
    (
        "continent beats distance",
        client("5.2.2.2", country="FR", continent="EU", lat=1.3, lon=103.8),
        "eu",
    ),
    # Cape Town: Singapore is nearer, but AF is mapped to eu.
    (
        "continent AF mapped",
        client("41.0.0.1", country="ZA", continent="AF", lat=-33.9, lon=18.4),
        "eu",
    ),
    # Antarctica is mapped nowhere: plain distance decides.
    ("distance: McMurdo", client("5.3.3.3", continent="AN", lat=-77.8, lon=166.7), "ap"),
    ("distance: Reykjavik", client("5.4.4.4", continent="AN", lat=64.15, lon=-21.9), "eu"),
    ("distance: Honolulu", client("5.5.5.5", continent="AN", lat=21.3, lon=-157.85), "us"),
    # A Country database: no coordinates, an unmapped continent → the default order.
    ("no coordinates, unmapped", client("5.6.6.6", country="AQ", continent="AN"), "us"),
    ("no coordinates, mapped", client("5.7.7.7", country="JP", continent="AS"), "ap"),
    ("unknown location", client("10.0.0.1"), "us"),
    ("no address at all", Client(None, None, None), "us"),
]


@pytest.mark.parametrize(("what", "who", "expected"), GEO_CASES, ids=[c[0] for c in GEO_CASES])
def test_geo_picks_the_nearest_mapped_region(what: str, who: Client, expected: str) -> None:
    decision = ask(geo_plan(), who)
    assert decision.rcode == NOERROR
    assert region_of(decision) == expected
    assert [REGION_OF[a] for a in addresses(decision)] == [expected]


@pytest.mark.parametrize(
    ("who", "order"),
    [
        (client("5.3.3.3", continent="AN", lat=-77.8, lon=-166.7), ["ap", "us", "eu"]),
        (client("5.4.4.4", continent="AN", lat=19.43, lon=-99.13), ["us", "eu", "ap"]),
        (client("10.1.1.1"), DEFAULT_ORDER),
        (client("41.0.0.1", continent="AF", lat=-33.9, lon=18.4), ["eu", "ap", "us"]),
    ],
)
def test_geo_whole_ranking_is_the_fallback_order(who: Client, order: list[str]) -> None:
    """Taking regions out one by one walks down the ranking."""
    seen = []
    taken: dict[str, str] = {}
    for _ in order:
        decision = ask(geo_plan(), who, state(regions=taken))
        name = region_of(decision)
        assert name is not None
        seen.append(name)
        taken[name] = "disabled"
    assert seen == order


def test_regions_without_location_rank_after_placed_ones_unless_mapped() -> None:
    nowhere = region("nowhere", {"www": ["192.0.2.99"]})
    mapped = region("mapped", {"www": ["192.0.2.98"]}, continents=["OC"])
    plan = make_plan(
        [service("www", ["nowhere", "mapped", "eu", "us"], policy="geo")],
        [nowhere, mapped, EU, US],
    )
    # A continent mapping needs no coordinates.
    sydney = client("1.1.1.1", country="AU", continent="OC", lat=-33.9, lon=151.2)
    assert region_of(ask(plan, sydney)) == "mapped"
    antarctic = client("5.3.3.3", continent="AN", lat=-77.8, lon=166.7)
    order = []
    taken: dict[str, str] = {}
    for _ in range(4):
        name = region_of(ask(plan, antarctic, state(regions=taken)))
        assert name is not None
        order.append(name)
        taken[name] = "disabled"
    assert order[:2] == ["us", "eu"]  # placed regions by distance (us 14800 km, eu 17300 km)
    assert order[2:] == ["nowhere", "mapped"]  # then the unplaced, in the listed order


FAILOVER_PLAN = make_plan(
    [service("www", ["ap", "eu", "us"], policy="failover", select="all")], [EU, US, AP]
)


@pytest.mark.parametrize(
    ("taken", "expected"),
    [
        ({}, "ap"),
        ({"ap": "disabled"}, "eu"),
        ({"ap": "draining"}, "eu"),
        ({"ap": "disabled", "eu": "draining"}, "us"),
        ({"eu": "disabled"}, "ap"),
    ],
)
def test_failover_takes_the_first_enabled_region_in_listed_order(
    taken: dict[str, str], expected: str
) -> None:
    # The client is in Europe: failover ignores location.
    london = client("81.2.69.1", country="GB", continent="EU", lat=51.5, lon=-0.09)
    assert region_of(ask(FAILOVER_PLAN, london, state(regions=taken))) == expected


@pytest.mark.parametrize(
    ("st", "expected_region", "expected_addresses"),
    [
        # One endpoint measured down: the region stays, without it.
        (state(down=[("eu", "198.51.100.10")]), "eu", ["198.51.100.11"]),
        # One endpoint disabled by an operator: the same.
        (state(disabled=[("eu", "198.51.100.11")]), "eu", ["198.51.100.10"]),
        # Every endpoint gone, one way or another: the next region takes over.
        (
            state(down=[("eu", "198.51.100.10")], disabled=[("eu", "198.51.100.11")]),
            "us",
            ["192.0.2.10", "192.0.2.11"],
        ),
        (state(regions={"eu": "draining"}), "us", ["192.0.2.10", "192.0.2.11"]),
        (
            state(regions={"eu": "disabled"}, down=[("us", "192.0.2.10")]),
            "us",
            ["192.0.2.11"],
        ),
        (
            state(regions={"eu": "disabled"}, down=[("us", "192.0.2.10"), ("us", "192.0.2.11")]),
            "ap",
            ["203.0.113.10"],
        ),
    ],
)
def test_unusable_endpoints_and_regions_are_skipped(
    st: State, expected_region: str, expected_addresses: list[str]
) -> None:
    eu = region("eu", {"www": ["198.51.100.10", "198.51.100.11"]}, lat=53.35, lon=-6.26)
    us = region("us", {"www": ["192.0.2.10", "192.0.2.11"]}, lat=39.04, lon=-77.49)
    ap = region("ap", {"www": ["203.0.113.10"]}, lat=1.35, lon=103.82)
    plan = make_plan([service("www", ["eu", "us", "ap"], policy="failover")], [eu, us, ap])
    decision = ask(plan, client("8.8.8.8"), st)
    assert decision.steering is not None
    assert decision.steering.fail_open is False
    assert region_of(decision) == expected_region
    assert addresses(decision) == expected_addresses


def test_an_endpoint_measured_down_counts_even_in_a_region_without_a_health_block() -> None:
    """Endpoints can carry their own check; whatever is measured down is skipped."""
    eu = region("eu", {"www": ["198.51.100.10", "198.51.100.11"]}, checked=False)
    us = region("us", {"www": ["192.0.2.10"]}, checked=False)
    plan = make_plan([service("www", ["eu", "us"], policy="failover")], [eu, us])
    assert addresses(ask(plan, client(None), state(down=[("eu", "198.51.100.10")]))) == [
        "198.51.100.11"
    ]
    both = state(down=[("eu", "198.51.100.10"), ("eu", "198.51.100.11")])
    assert region_of(ask(plan, client(None), both)) == "us"


FAIL_OPEN_CASES = [
    (
        "everything measured down",
        state(
            down=[
                (r, a)
                for r, a in (("eu", "198.51.100.10"), ("us", "192.0.2.10"), ("ap", "203.0.113.10"))
            ]
        ),
    ),
    (
        "every region disabled",
        state(regions={"eu": "disabled", "us": "disabled", "ap": "draining"}),
    ),
    (
        "every endpoint disabled",
        state(disabled=[("eu", "198.51.100.10"), ("us", "192.0.2.10"), ("ap", "203.0.113.10")]),
    ),
]


@pytest.mark.parametrize(("what", "st"), FAIL_OPEN_CASES, ids=[c[0] for c in FAIL_OPEN_CASES])
def test_fail_open_answers_as_if_everything_were_usable(what: str, st: State) -> None:
    london = client("81.2.69.1", country="GB", continent="EU", lat=51.5, lon=-0.09)
    decision = ask(geo_plan(), london, st)
    assert decision.rcode == NOERROR
    assert decision.steering is not None
    assert decision.steering.fail_open is True
    # As if all were usable: the region the client would get with nothing down.
    assert region_of(decision) == "eu"
    assert addresses(decision) == ["198.51.100.10"]


def test_fail_open_prefers_what_the_operator_left_enabled() -> None:
    """eu disabled by an operator, the rest measured down: answer from a region the
    operator did not take out, ignoring only the measurements."""
    london = client("81.2.69.1", country="GB", continent="EU", lat=51.5, lon=-0.09)
    st = state(regions={"eu": "disabled"}, down=[("us", "192.0.2.10"), ("ap", "203.0.113.10")])
    decision = ask(geo_plan(), london, st)
    assert decision.steering is not None
    assert decision.steering.fail_open is True
    assert region_of(decision) == "us"
    assert addresses(decision) == ["192.0.2.10"]


def test_fail_open_in_the_family_asked() -> None:
    st = state(down=[("eu", "2001:db8:e::10"), ("us", "2001:db8:a::10"), ("ap", "2001:db8:5::10")])
    london = client("81.2.69.1", country="GB", continent="EU", lat=51.5, lon=-0.09)
    v6 = ask(geo_plan(), london, st, qtype=TYPE_AAAA)
    assert v6.steering is not None and v6.steering.fail_open
    assert addresses(v6) == ["2001:db8:e::10"]
    # IPv4 is untouched by the IPv6 outage.
    v4 = ask(geo_plan(), london, st, qtype=TYPE_A)
    assert v4.steering is not None and not v4.steering.fail_open
    assert addresses(v4) == ["198.51.100.10"]


def test_a_and_aaaa_answer_from_their_own_family() -> None:
    tokyo = client("202.12.27.33", country="JP", continent="AS", lat=35.7, lon=139.7)
    assert addresses(ask(geo_plan(), tokyo, qtype=TYPE_A)) == ["203.0.113.10"]
    assert addresses(ask(geo_plan(), tokyo, qtype=TYPE_AAAA)) == ["2001:db8:5::10"]
    (rrset,) = ask(geo_plan(), tokyo, qtype=TYPE_AAAA).answer
    assert rrset.rtype == TYPE_AAAA and rrset.ttl == 30 and rrset.name == WWW


def test_a_region_without_the_family_is_no_candidate() -> None:
    """eu has no IPv6 endpoint: a European AAAA question goes to the next nearest."""
    eu = region("eu", {"www": ["198.51.100.10"]}, lat=53.35, lon=-6.26, continents=["EU"])
    plan = make_plan([service("www", ["us", "eu", "ap"])], [eu, US, AP])
    london = client("81.2.69.1", country="GB", continent="EU", lat=51.5, lon=-0.09)
    assert region_of(ask(plan, london, qtype=TYPE_A)) == "eu"
    v6 = ask(plan, london, qtype=TYPE_AAAA)
    assert region_of(v6) == "us"  # 5,900 km beats 11,000 km
    assert addresses(v6) == ["2001:db8:a::10"]
    assert v6.steering is not None and not v6.steering.fail_open


def test_nodata_when_the_service_has_no_endpoint_of_the_family() -> None:
    only_v4 = region("r", {"www": ["192.0.2.1", "192.0.2.2"]})
    plan = make_plan([service("www", ["r"])], [only_v4])
    decision = ask(plan, client("8.8.8.8"), qtype=TYPE_AAAA)
    assert decision.rcode == NOERROR
    assert decision.answer == ()
    (soa,) = decision.authority
    assert soa.rtype == 6
    assert decision.steering is not None and decision.steering.addresses == ()
    # Other types of a service name: NODATA too.
    mx = ask(plan, client("8.8.8.8"), qtype=TYPE_MX)
    assert mx.rcode == NOERROR and mx.answer == () and mx.authority[0].rtype == 6


def weighted_yaml(tmp_path: Path, regions_text: str) -> Plan:
    write_config(
        tmp_path,
        {
            "test.example.yaml": f"""
                zone: test.example
                soa: {{mname: ns1.test.example, rname: hostmaster.test.example}}
                ns: [ns1.test.example]
                records:
                  ns1: {{A: [192.0.2.53]}}
                services:
                  www: {{policy: weighted, select: first, answers: 1, regions: {regions_text}}}
            """,
            "regions/a.yaml": """
                region: a
                weight: 5
                services:
                  www.test.example: [192.0.2.1]
            """,
            "regions/b.yaml": """
                region: b
                services:
                  www.test.example: [192.0.2.2]
            """,
            "regions/c.yaml": """
                region: c
                weight: 2
                services:
                  www.test.example: [192.0.2.3]
            """,
        },
    )
    return compile_plan(load_config(str(tmp_path)))


@pytest.mark.parametrize(
    ("regions_text", "expected"),
    [
        # The service's mapping gives the weights (and leaves c out).
        ("{a: 3, b: 1}", {"a": 0.75, "b": 0.25}),
        # A list takes each region's own `weight:` (a 5, b 1, c 2).
        ("[a, b, c]", {"a": 5 / 8, "b": 1 / 8, "c": 2 / 8}),
    ],
)
def test_weighted_policy_shares_regions_by_weight(
    tmp_path: Path, regions_text: str, expected: dict[str, float]
) -> None:
    plan = weighted_yaml(tmp_path, regions_text)
    rng = random.Random(7)
    n = 8000
    counts: Counter[str] = Counter()
    for _ in range(n):
        decision = select(plan, State(), "www.test.example.", TYPE_A, client("8.8.8.8"), rng)
        assert decision.steering is not None
        counts[decision.steering.region or ""] += 1
    assert set(counts) == set(expected)
    for name, share in expected.items():
        # Binomial standard deviation at n=8000 is under 0.6 %: 2.5 % is > 4 sigma.
        assert abs(counts[name] / n - share) < 0.025, (name, counts)


def test_weighted_policy_falls_to_the_other_regions_when_one_is_out(tmp_path: Path) -> None:
    plan = weighted_yaml(tmp_path, "{a: 3, b: 1}")
    rng = random.Random(3)
    st = state(regions={"a": "disabled"})
    got = {
        select(plan, st, "www.test.example.", TYPE_A, client("8.8.8.8"), rng).steering.region  # type: ignore[union-attr]
        for _ in range(50)
    }
    assert got == {"b"}
