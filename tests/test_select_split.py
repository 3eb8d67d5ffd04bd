"""select() split into classify() and decide(): the same decisions as the one-walk
selection it replaced (tests/select_oracle.py), with rankings memoised per place."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gslb.config import load_config
from gslb.plan import TYPE_A, TYPE_AAAA, TYPE_ANY, Plan
from gslb.select import (
    Client,
    Decision,
    Fixed,
    Question,
    RankingMemo,
    Steered,
    classify,
    decide,
    select,
)
from gslb.state import State
from tests import select_oracle
from tests.select_builders import client, fqdn, make_plan, region, service, state
from tests.test_select_properties import FAST, WWW, Scenario, clients, scenarios

SAMPLE = Path(__file__).resolve().parent.parent / "zones"
TYPE_MX, TYPE_TXT, TYPE_SRV, TYPE_NS, TYPE_SOA, TYPE_CNAME = 15, 16, 33, 2, 6, 5
QTYPES = (TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_MX, TYPE_TXT, TYPE_CNAME)


def same(got: Decision, want: Decision) -> None:
    assert got == want
    assert got.trace == want.trace


def split(
    plan: Plan,
    st_: State,
    name: str,
    qtype: int,
    who: Client,
    seed: int,
    memo: RankingMemo | None = None,
) -> Decision:
    key = classify(plan, Question(name, qtype), who, memo)
    return decide(plan, st_, key, random.Random(seed))


@FAST
@given(scenarios(), clients(), st.sampled_from(QTYPES), st.integers(0, 2**32))
def test_decide_of_classify_is_the_one_walk_selection(
    sc: Scenario, who: Client, qtype: int, seed: int
) -> None:
    want = select_oracle.select(sc.plan, sc.state, WWW, qtype, who, random.Random(seed))
    assert split(sc.plan, sc.state, WWW, qtype, who, seed) == want
    memo = RankingMemo()
    for _ in range(2):  # the second time from the memo
        assert split(sc.plan, sc.state, WWW, qtype, who, seed, memo) == want
    explained = select_oracle.select(
        sc.plan, sc.state, WWW, qtype, who, random.Random(seed), explain=True
    )
    same(select(sc.plan, sc.state, WWW, qtype, who, random.Random(seed), True, memo), explained)


@pytest.fixture(scope="module")
def sample_plan() -> Plan:
    from gslb.plan import compile_plan

    return compile_plan(load_config(str(SAMPLE)))


LABELS = ("", "www.", "api.", "docs.", "ns1.", "ns2.", "sip.", "_sip._tcp.", "nx.", "a.b.")
SAMPLE_NAMES = (*(f"{label}gslb.example.com." for label in LABELS), "example.org.")
SAMPLE_ENDPOINTS = (
    ("us-east", "192.0.2.10"),
    ("us-east", "192.0.2.11"),
    ("eu-west", "198.51.100.10"),
    ("ap-southeast", "203.0.113.10"),
    ("us-east", "2001:db8:a::10"),
)


@st.composite
def sample_states(draw: st.DrawFn) -> State:
    return state(
        down=draw(st.sets(st.sampled_from(SAMPLE_ENDPOINTS))),
        disabled=draw(st.sets(st.sampled_from(SAMPLE_ENDPOINTS), max_size=2)),
        regions=draw(
            st.dictionaries(
                st.sampled_from(["us-east", "eu-west", "ap-southeast"]),
                st.sampled_from(["enabled", "disabled", "draining"]),
            )
        ),
    )


@FAST
@given(
    st.sampled_from(SAMPLE_NAMES),
    st.sampled_from((*QTYPES, TYPE_SRV, TYPE_NS, TYPE_SOA, 43)),
    clients(),
    sample_states(),
    st.integers(0, 2**32),
)
def test_the_sample_zone_decides_as_before_for_every_name_type_and_state(
    sample_plan: Plan, name: str, qtype: int, who: Client, st_: State, seed: int
) -> None:
    want = select_oracle.select(sample_plan, st_, name, qtype, who, random.Random(seed), True)
    got = select(sample_plan, st_, name, qtype, who, random.Random(seed), True, RankingMemo())
    same(got, want)


def geo_plan(select_: str = "first", policy: str = "geo") -> Plan:
    regions = [
        region("eu", {"www": ["198.51.100.1", "198.51.100.2"]}, continents=["EU"]),
        region("us", {"www": ["192.0.2.1", "192.0.2.2"]}, continents=["NA"]),
    ]
    return make_plan(
        [service("www", ["us", "eu"], policy=policy, select=select_, answers=1)],  # type: ignore[arg-type]
        regions,
    )


PARIS = client("81.2.69.0", 24, country="FR", continent="EU", lat=48.9, lon=2.3, geo_prefix=20)


@pytest.mark.parametrize(
    ("policy", "picker", "ranked", "hashed", "scope"),
    [
        ("geo", "first", ("eu", "us"), False, 20),
        ("geo", "hashed", ("eu", "us"), True, 24),
        ("failover", "first", ("us", "eu"), False, 0),
        ("failover", "hashed", ("us", "eu"), True, 24),
        ("weighted", "first", None, False, 0),
    ],
)
def test_a_service_question_classifies_as_what_its_answer_reads_of_the_client(
    policy: str, picker: str, ranked: tuple[str, ...] | None, hashed: bool, scope: int
) -> None:
    key = classify(geo_plan(picker, policy), Question(WWW, TYPE_A), PARIS)
    assert isinstance(key, Steered)
    names = None if key.ranking is None else tuple(r.entry.region.name for r in key.ranking)
    assert names == ranked
    assert bool(key.hash_key) is hashed
    assert key.scope == scope
    assert key.family == 4


@pytest.mark.parametrize(
    ("name", "qtype", "rcode", "authoritative"),
    [
        (fqdn("nx"), TYPE_A, 3, True),  # NXDOMAIN
        (WWW, TYPE_MX, 0, True),  # a service answers A and AAAA only: NODATA
        (WWW, TYPE_AAAA, 0, True),  # no region has IPv6 endpoints: NODATA
        ("example.org.", TYPE_A, 5, False),  # not our zone: REFUSED
    ],
)
def test_what_no_client_and_no_state_change_is_fixed(
    name: str, qtype: int, rcode: int, authoritative: bool
) -> None:
    key = classify(geo_plan(), Question(name, qtype), PARIS)
    assert isinstance(key, Fixed)
    assert (key.decision.rcode, key.decision.authoritative) == (rcode, authoritative)


def test_a_state_change_is_seen_by_a_key_classified_before_it() -> None:
    plan = geo_plan()
    key = classify(plan, Question(WWW, TYPE_A), PARIS)
    rng = random.Random(1)
    assert decide(plan, State(), key, rng).steering.region == "eu"  # type: ignore[union-attr]
    eu_off = state(regions={"eu": "disabled"})
    assert decide(plan, eu_off, key, rng).steering.region == "us"  # type: ignore[union-attr]


def test_rankings_are_computed_once_per_place_and_per_plan() -> None:
    plan = geo_plan()
    memo = RankingMemo()
    # Two networks the database places alike (same city): one ranking, shared.
    other = client("81.2.70.0", 24, country="FR", continent="EU", lat=48.9, lon=2.3)
    first = classify(plan, Question(WWW, TYPE_A), PARIS, memo)
    second = classify(plan, Question(WWW, TYPE_A), other, memo)
    assert isinstance(first, Steered) and isinstance(second, Steered)
    assert first.ranking is second.ranking
    assert len(memo) == 1
    assert (first.scope, second.scope) == (20, 24)  # each network keeps its own scope
    elsewhere = client("192.0.2.0", 24, country="US", continent="NA", lat=40.0, lon=-75.0)
    classify(plan, Question(WWW, TYPE_A), elsewhere, memo)
    assert len(memo) == 2
    reloaded = geo_plan()
    third = classify(reloaded, Question(WWW, TYPE_A), PARIS, memo)
    assert isinstance(third, Steered)
    assert third.ranking is not first.ranking  # a new plan ranks again
    assert len(memo) == 1


def test_the_ranking_memo_is_bounded() -> None:
    plan = geo_plan()
    memo = RankingMemo(max_entries=50)
    for i in range(500):
        who = client(f"10.0.{i % 250}.0", 24, country="FR", lat=i / 10, lon=2.0)
        classify(plan, Question(WWW, TYPE_A), who, memo)
        assert len(memo) <= 50


@given(
    st.integers(0, 2**32 - 1) | st.integers(0, 2**128 - 1),
    st.none() | st.integers(0, 128),
)
def test_the_hash_network_is_the_client_network_masked(number: int, source: int | None) -> None:
    import ipaddress

    address = ipaddress.ip_address(number)
    if source is not None:
        source = min(source, address.max_prefixlen)
    key, prefix = Client(address, source, None).hash_network()
    expected_prefix = min(24 if address.version == 4 else 56, source if source is not None else 128)
    network = ipaddress.ip_network(f"{address}/{expected_prefix}", strict=False)
    assert (key, prefix) == (
        network.network_address.packed + bytes([expected_prefix]),
        expected_prefix,
    )
