"""Pickers inside the chosen region (all, weighted, hashed, first) and the ECS scope of
each decision, over compiled plans."""

from __future__ import annotations

import ipaddress
import random
from collections import Counter
from collections.abc import Sequence

import pytest

from gslb.explain import client_from_text
from gslb.geo import GeoDatabase
from gslb.model import Picker, Policy
from gslb.plan import TYPE_A, TYPE_AAAA, Plan
from gslb.select import Client, Decision, select
from gslb.select.client import HASH_PREFIX
from gslb.state import State
from tests.conftest import DEMO_DB
from tests.select_builders import client, fqdn, make_plan, region, service

WWW = fqdn("www")
V4 = [("192.0.2.1", 1), ("192.0.2.2", 1), ("192.0.2.3", 1), ("192.0.2.4", 1)]
V6 = ["2001:db8::1", "2001:db8::2", "2001:db8::3"]


def plan_for(
    select_: Picker,
    answers: int,
    endpoints: Sequence[str | tuple[str, int]],
    policy: Policy = "failover",
) -> Plan:
    r = region("r", {"www": endpoints}, lat=50.0, lon=8.0)
    return make_plan([service("www", ["r"], policy=policy, select=select_, answers=answers)], [r])


def answer(plan: Plan, who: Client, rng: random.Random, qtype: int = TYPE_A) -> list[str]:
    decision = select(plan, State(), WWW, qtype, who, rng)
    return [str(rd) for rrset in decision.answer for rd in rrset.rdatas]


@pytest.mark.parametrize(("answers", "expected"), [(1, 1), (2, 2), (4, 4), (8, 4)])
def test_first_is_priority_order(answers: int, expected: int) -> None:
    plan = plan_for("first", answers, V4)
    for seed in range(5):
        got = answer(plan, client("8.8.8.8"), random.Random(seed))
        assert got == [a for a, _ in V4][:expected]


@pytest.mark.parametrize("answers", [1, 2, 4, 8])
def test_all_is_rotated_and_every_address_leads_equally_often(answers: int) -> None:
    plan = plan_for("all", answers, V4)
    ring = [a for a, _ in V4]
    rng = random.Random(11)
    leads: Counter[str] = Counter()
    n = 4000
    for _ in range(n):
        got = answer(plan, client("8.8.8.8"), rng)
        assert len(got) == min(answers, len(ring))
        start = ring.index(got[0])
        assert got == (ring[start:] + ring[:start])[: len(got)]  # a rotation of the list
        leads[got[0]] += 1
    assert set(leads) == set(ring)
    for address in ring:
        assert abs(leads[address] / n - 0.25) < 0.03, leads  # sigma 0.7 %


@pytest.mark.parametrize(
    ("endpoints", "answers"),
    [
        ([("192.0.2.1", 3), ("192.0.2.2", 1)], 1),
        ([("192.0.2.1", 3), ("192.0.2.2", 1)], 2),
        ([("192.0.2.1", 6), ("192.0.2.2", 3), ("192.0.2.3", 1)], 2),
        ([("192.0.2.1", 1), ("192.0.2.2", 1), ("192.0.2.3", 2)], 5),
    ],
)
def test_weighted_draws_by_weight_without_repetition(
    endpoints: list[tuple[str, int]], answers: int
) -> None:
    plan = plan_for("weighted", answers, endpoints)
    total = sum(w for _, w in endpoints)
    rng = random.Random(5)
    firsts: Counter[str] = Counter()
    n = 6000
    for _ in range(n):
        got = answer(plan, client("8.8.8.8"), rng)
        assert len(got) == min(answers, len(endpoints))
        assert len(set(got)) == len(got)
        firsts[got[0]] += 1
    for address, weight in endpoints:
        assert abs(firsts[address] / n - weight / total) < 0.025, firsts


def test_weighted_second_draw_follows_the_remaining_weights() -> None:
    """6/3/1: after 192.0.2.1 leads, 192.0.2.2 follows with probability 3/4."""
    plan = plan_for("weighted", 2, [("192.0.2.1", 6), ("192.0.2.2", 3), ("192.0.2.3", 1)])
    rng = random.Random(9)
    seconds: Counter[str] = Counter()
    for _ in range(8000):
        got = answer(plan, client("8.8.8.8"), rng)
        if got[0] == "192.0.2.1":
            seconds[got[1]] += 1
    share = seconds["192.0.2.2"] / sum(seconds.values())
    assert abs(share - 0.75) < 0.03, seconds


HASH_SAME = [
    # Clients that share a hash network get one answer.
    (client("198.51.100.1"), client("198.51.100.254")),  # the same /24
    (client("198.51.100.0", 24), client("198.51.100.77")),  # ECS /24 and a host in it
    (client("10.16.0.0", 20), client("10.16.0.0", 20)),
    (client("2001:db8:0:1::1"), client("2001:db8:0:ff::9")),  # the same /56
    (client("2001:db8:0:100::", 56), client("2001:db8:0:1ff::1")),
]


@pytest.mark.parametrize(("a", "b"), HASH_SAME)
def test_hashed_is_stable_per_client_network(a: Client, b: Client) -> None:
    endpoints = [(f"192.0.2.{i}", 1) for i in range(1, 9)]
    plan = plan_for("hashed", 3, endpoints)
    first = answer(plan, a, random.Random(1))
    assert len(first) == 3 and len(set(first)) == 3
    for seed in range(2, 6):
        assert answer(plan, a, random.Random(seed)) == first
        assert answer(plan, b, random.Random(seed)) == first
    v6 = plan_for("hashed", 2, [(a6, 1) for a6 in V6])
    assert answer(v6, a, random.Random(1), TYPE_AAAA) == answer(v6, b, random.Random(2), TYPE_AAAA)


@pytest.mark.parametrize(
    ("who", "prefix", "network"),
    [
        (client("198.51.100.77"), 24, "198.51.100.0/24"),
        (client("198.51.100.0", 24), 24, "198.51.100.0/24"),
        (client("198.51.100.0", 28), 24, "198.51.100.0/24"),  # longer source: still /24
        (client("10.16.0.0", 20), 20, "10.16.0.0/20"),  # shorter source: the source
        (client("10.0.0.0", 0), 0, "0.0.0.0/0"),
        (client("2001:db8:0:ab::1"), 56, "2001:db8:0::/56"),
        (client("2001:db8::", 64), 56, "2001:db8::/56"),
        (client("2001:db8::", 48), 48, "2001:db8::/48"),
    ],
)
def test_hash_network_is_the_24_or_56_or_a_shorter_source(
    who: Client, prefix: int, network: str
) -> None:
    key, got = who.hash_network()
    assert got == prefix
    net = ipaddress.ip_network(network)
    assert key == net.network_address.packed + bytes([prefix])
    assert HASH_PREFIX == {4: 24, 6: 56}


def test_hashed_spreads_client_networks_by_weight() -> None:
    endpoints = [("192.0.2.1", 3), ("192.0.2.2", 1)]
    plan = plan_for("hashed", 1, endpoints)
    firsts: Counter[str] = Counter()
    n = 4000
    for i in range(n):
        who = client(f"{10 + i // 256}.{i % 256}.7.0", 24)
        firsts[answer(plan, who, random.Random(0))[0]] += 1
    assert abs(firsts["192.0.2.1"] / n - 0.75) < 0.03, firsts


def test_hashed_is_the_same_on_every_node() -> None:
    """A stable hash: the answer is a fixed function of the client network and endpoints
    (blake2b, never the per-process salted hash())."""
    endpoints = [(f"192.0.2.{i}", 1) for i in range(1, 9)]
    plan = plan_for("hashed", 3, endpoints)
    got = answer(plan, client("198.51.100.1"), random.Random(1))
    assert got == ["192.0.2.1", "192.0.2.8", "192.0.2.6"]


# --- ECS scope -------------------------------------------------------------------------

SCOPE_CASES = [
    # (what, policy, picker, client, expected scope)
    (
        "geo: the db network",
        "geo",
        "first",
        client("81.2.69.0", 24, country="GB", continent="EU", lat=51.5, lon=0, geo_prefix=24),
        24,
    ),
    (
        "geo: a shorter db network",
        "geo",
        "first",
        client("81.2.69.0", 24, continent="EU", lat=51.5, lon=0, geo_prefix=16),
        16,
    ),
    (
        "geo: a shorter source",
        "geo",
        "first",
        client("81.2.64.0", 20, continent="EU", lat=51.5, lon=0, geo_prefix=24),
        20,
    ),
    (
        "geo: IPv6",
        "geo",
        "first",
        client("2001:4860::", 56, continent="NA", lat=37, lon=-122, geo_prefix=32),
        32,
    ),
    (
        "geo: source 0",
        "geo",
        "first",
        client("8.8.8.8", 0, continent="NA", lat=37, lon=-122, geo_prefix=24),
        0,
    ),
    ("failover ignores the client", "failover", "first", client("81.2.69.0", 24), 0),
    ("failover+all", "failover", "all", client("81.2.69.0", 24), 0),
    ("weighted+weighted", "weighted", "weighted", client("81.2.69.0", 24), 0),
    ("hashed: /24", "failover", "hashed", client("81.2.69.0", 24), 24),
    ("hashed: longer source", "failover", "hashed", client("81.2.69.0", 32), 24),
    ("hashed: shorter source", "failover", "hashed", client("81.2.64.0", 20), 20),
    ("hashed: IPv6 /56", "failover", "hashed", client("2001:db8::", 64), 56),
    ("hashed: IPv6 short source", "failover", "hashed", client("2001:db8::", 40), 40),
    ("hashed: source 0", "failover", "hashed", client("8.8.8.8", 0), 0),
    (
        "geo+hashed: the longer",
        "geo",
        "hashed",
        client("81.2.69.0", 24, continent="EU", lat=51, lon=0, geo_prefix=16),
        24,
    ),
    (
        "geo+hashed: db longer",
        "geo",
        "hashed",
        client("2620:fe::", 64, continent="EU", lat=47, lon=8, geo_prefix=60),
        60,
    ),
    ("no ECS", "geo", "hashed", client("81.2.69.1", continent="EU", lat=51, lon=0), 0),
]


@pytest.mark.parametrize(
    ("what", "policy", "picker", "who", "scope"), SCOPE_CASES, ids=[c[0] for c in SCOPE_CASES]
)
def test_ecs_scope_is_what_the_decision_depended_on(
    what: str, policy: Policy, picker: Picker, who: Client, scope: int
) -> None:
    endpoints: list[str | tuple[str, int]] = [
        "192.0.2.1",
        "192.0.2.2",
        "2001:db8::1",
        "2001:db8::2",
    ]
    plan = plan_for(picker, 1, endpoints, policy)
    decision = select(plan, State(), WWW, TYPE_A, who, random.Random(1))
    assert decision.answer
    assert decision.scope == scope
    if who.source_prefix is not None:
        assert decision.scope <= who.source_prefix


def static_plan() -> Plan:
    r = region("r", {"www": ["192.0.2.1"]}, lat=50, lon=8)
    return make_plan(
        [service("www", ["r"], policy="geo", select="hashed")],
        [r],
        static={"mail": [("A", "192.0.2.25")], "docs": [("CNAME", WWW)]},
    )


def test_static_names_have_scope_zero_and_aliases_of_services_do_not() -> None:
    who = client("81.2.69.0", 24, continent="EU", lat=51, lon=0, geo_prefix=24)
    plan = static_plan()
    static = select(plan, State(), fqdn("mail"), TYPE_A, who, random.Random(1))
    assert static.answer and static.scope == 0
    missing = select(plan, State(), fqdn("nothing"), TYPE_A, who, random.Random(1))
    assert missing.rcode == 3 and missing.scope == 0
    alias = select(plan, State(), fqdn("docs"), TYPE_A, who, random.Random(1))
    assert [r.rtype for r in alias.answer] == [5, TYPE_A]
    assert alias.scope == 24  # the alias's answer is the steered one


def test_nodata_of_a_missing_family_does_not_depend_on_the_client() -> None:
    who = client("81.2.69.0", 24, continent="EU", lat=51, lon=0, geo_prefix=24)
    decision = select(static_plan(), State(), WWW, TYPE_AAAA, who, random.Random(1))
    assert decision.answer == () and decision.rcode == 0
    assert decision.scope == 0


@pytest.mark.parametrize(
    ("text", "source", "geo_prefix", "scope"),
    [
        ("81.2.69.0/24", 24, 24, 24),
        ("81.2.69.128/25", 25, 24, 24),  # never longer than the db network
        ("81.2.0.0/16", 16, 16, 16),  # 81.2.0.0 is in no db network: the source
        ("2620:fe::/56", 56, 48, 48),  # Quad9's /48
        ("2001:4860::/32", 32, 32, 32),
        ("8.8.8.0/0", 0, 24, 0),
    ],
)
def test_scope_with_the_demo_database(text: str, source: int, geo_prefix: int, scope: int) -> None:
    endpoints: list[str | tuple[str, int]] = ["192.0.2.1", "2001:db8::1"]
    plan = plan_for("first", 1, endpoints, "geo")
    with GeoDatabase(str(DEMO_DB)) as db:
        who = client_from_text(text, db)
    assert who.source_prefix == source
    assert who.geo_prefix == geo_prefix
    qtype = TYPE_A if ":" not in text else TYPE_AAAA
    decision: Decision = select(plan, State(), WWW, qtype, who, random.Random(1))
    assert decision.scope == scope
