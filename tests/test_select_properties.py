"""Invariants of the selection pipeline, checked with hypothesis over generated plans,
states and clients."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gslb.model import PICKERS, POLICIES, Picker, Policy, Region
from gslb.plan import TYPE_A, TYPE_AAAA, Plan
from gslb.select import NOERROR, Client, Decision, select
from gslb.state import State, endpoint_key
from tests.select_builders import client, fqdn, make_plan, region, service, state

WWW = fqdn("www")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTINENTS = ("AF", "AS", "EU", "NA", "OC", "SA")


@dataclass(frozen=True)
class Scenario:
    plan: Plan
    regions: tuple[Region, ...]
    order: tuple[str, ...]  # the service's listed order
    policy: Policy
    picker: Picker
    answers: int
    state: State

    def endpoints(self, name: str, family: int) -> list[str]:
        return [e.address for e in self.region(name).endpoints[WWW] if e.family == family]

    def region(self, name: str) -> Region:
        return next(r for r in self.regions if r.name == name)

    def usable(self, name: str, family: int) -> list[str]:
        if self.state.admin.region(name) != "enabled":
            return []
        return [
            a
            for a in self.endpoints(name, family)
            if self.state.endpoint_usable(endpoint_key(name, a))
        ]


@st.composite
def scenarios(draw: st.DrawFn, policies: tuple[Policy, ...] = POLICIES) -> Scenario:
    count = draw(st.integers(1, 4))
    regions = []
    for i in range(count):
        v4 = [
            (f"192.0.{i}.{j + 1}", draw(st.integers(1, 9))) for j in range(draw(st.integers(0, 5)))
        ]
        v6 = [
            (f"2001:db8:{i}::{j + 1}", draw(st.integers(1, 9)))
            for j in range(draw(st.integers(0, 3)))
        ]
        placed = draw(st.booleans())
        regions.append(
            region(
                f"r{i}",
                {"www": v4 + v6},
                lat=draw(st.floats(-80, 80)) if placed else None,
                lon=draw(st.floats(-179, 179)) if placed else None,
                continents=draw(st.sets(st.sampled_from(CONTINENTS), max_size=2)),
                weight=draw(st.integers(1, 5)),
            )
        )
    order = tuple(draw(st.permutations([r.name for r in regions])))
    policy = draw(st.sampled_from(policies))
    picker = draw(st.sampled_from(PICKERS))
    answers = draw(st.integers(1, 6))
    keys = [(r.name, e.address) for r in regions for e in r.endpoints[WWW]]
    down = draw(st.sets(st.sampled_from(keys))) if keys else set()
    disabled = draw(st.sets(st.sampled_from(keys), max_size=2)) if keys else set()
    admin = draw(
        st.dictionaries(
            st.sampled_from([r.name for r in regions]),
            st.sampled_from(["enabled", "disabled", "draining"]),
        )
    )
    plan = make_plan(
        [service("www", order, policy=policy, select=picker, answers=answers)], regions
    )
    st_ = state(down=down, disabled=disabled, regions=admin)
    return Scenario(plan, tuple(regions), order, policy, picker, answers, st_)


@st.composite
def clients(draw: st.DrawFn) -> Client:
    v6 = draw(st.booleans())
    if v6:
        address = f"2001:db8:{draw(st.integers(0, 0xFFFF)):x}:{draw(st.integers(0, 0xFFFF)):x}::1"
    else:
        address = ".".join(str(draw(st.integers(1, 223))) for _ in range(4))
    source = draw(st.none() | st.integers(0, 128 if v6 else 32))
    if draw(st.booleans()):
        return client(address, source)
    return client(
        address,
        source,
        continent=draw(st.sampled_from(CONTINENTS)),
        lat=draw(st.floats(-89, 89)),
        lon=draw(st.floats(-180, 180)),
        geo_prefix=draw(st.integers(8, 128 if v6 else 32)),
    )


def addresses(decision: Decision) -> list[str]:
    return [str(rd) for rrset in decision.answer for rd in rrset.rdatas]


@FAST
@given(scenarios(), clients(), st.sampled_from([TYPE_A, TYPE_AAAA]), st.integers(0, 2**32))
def test_every_answer_is_bounded_unique_and_from_one_usable_region(
    sc: Scenario, who: Client, qtype: int, seed: int
) -> None:
    decision = select(sc.plan, sc.state, WWW, qtype, who, random.Random(seed))
    family = 4 if qtype == TYPE_A else 6
    assert decision.rcode == NOERROR
    got = addresses(decision)
    assert len(got) <= sc.answers
    assert len(set(got)) == len(got)
    assert decision.steering is not None
    if not any(sc.endpoints(r.name, family) for r in sc.regions):
        assert got == [] and decision.authority[0].rtype == 6  # NODATA with the SOA
        return
    # Fail-open never answers empty when the service has endpoints of the family.
    assert got
    name = decision.steering.region
    assert name is not None
    pool = sc.endpoints(name, family)
    assert set(got) <= set(pool)
    anything_usable = any(sc.usable(r, family) for r in sc.order)
    assert decision.steering.fail_open is (not anything_usable)
    if anything_usable:
        usable = sc.usable(name, family)
        assert set(got) <= set(usable)
        assert len(got) == min(sc.answers, len(usable))  # as many as it may give
    if who.source_prefix is not None:
        assert decision.scope <= who.source_prefix


@FAST
@given(scenarios(policies=("failover",)), clients(), st.integers(0, 2**32))
def test_failover_takes_the_first_usable_region_in_listed_order(
    sc: Scenario, who: Client, seed: int
) -> None:
    decision = select(sc.plan, sc.state, WWW, TYPE_A, who, random.Random(seed))
    assert decision.steering is not None
    usable = [r for r in sc.order if sc.usable(r, 4)]
    if usable:
        assert decision.steering.region == usable[0]
        assert not decision.steering.fail_open
    elif any(sc.endpoints(r, 4) for r in sc.order):
        assert decision.steering.fail_open
        assert addresses(decision)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 10), min_size=2, max_size=5), st.integers(0, 1000))
def test_weighted_shares_converge_to_the_weights(weights: list[int], seed: int) -> None:
    endpoints = [(f"192.0.2.{i + 1}", w) for i, w in enumerate(weights)]
    plan = make_plan(
        [service("www", ["r"], policy="failover", select="weighted", answers=1)],
        [region("r", {"www": endpoints})],
    )
    rng = random.Random(seed)
    n = 3000
    counts: Counter[str] = Counter()
    who = client("198.51.100.1", 24)
    for _ in range(n):
        counts[addresses(select(plan, State(), WWW, TYPE_A, who, rng))[0]] += 1
    total = sum(weights)
    for address, w in endpoints:
        p = w / total
        # 5 sigma of a binomial share: a failure is a real bias, not bad luck.
        bound = 5 * math.sqrt(p * (1 - p) / n) + 1 / n
        assert abs(counts[address] / n - p) <= bound, (weights, counts)


@st.composite
def hashed_cases(draw: st.DrawFn) -> tuple[list[tuple[str, int]], int, int]:
    n = draw(st.integers(2, 10))
    endpoints = [(f"192.0.2.{i + 1}", draw(st.integers(1, 5))) for i in range(n)]
    return endpoints, draw(st.integers(0, n - 1)), draw(st.integers(1, 4))


@FAST
@given(hashed_cases(), st.lists(st.integers(0, 2**24 - 1), min_size=1, max_size=40, unique=True))
def test_hashed_is_stable_and_removing_one_endpoint_moves_only_its_clients(
    case: tuple[list[tuple[str, int]], int, int], networks: list[int]
) -> None:
    endpoints, removed_index, answers = case
    plan = make_plan(
        [service("www", ["r"], policy="failover", select="hashed", answers=answers)],
        [region("r", {"www": endpoints})],
    )
    removed = endpoints[removed_index][0]
    without = state(down=[("r", removed)])
    for net in networks:
        a, b, c = net >> 16, (net >> 8) & 0xFF, net & 0xFF
        host1 = client(f"{a}.{b}.{c}.1")
        host2 = client(f"{a}.{b}.{c}.200")
        ecs = client(f"{a}.{b}.{c}.0", 24)
        before = addresses(select(plan, State(), WWW, TYPE_A, host1, random.Random(1)))
        # Stable: whatever the randomness, whichever host of the /24, with ECS or not.
        assert addresses(select(plan, State(), WWW, TYPE_A, host2, random.Random(2))) == before
        assert addresses(select(plan, State(), WWW, TYPE_A, ecs, random.Random(3))) == before
        after = addresses(select(plan, without, WWW, TYPE_A, host1, random.Random(4)))
        if removed not in before:
            assert after == before  # not its client: nothing moves
        else:
            # Its client: the others keep their order, the next in line joins.
            assert after[: len(before) - 1] == [x for x in before if x != removed]
            assert removed not in after


@FAST
@given(scenarios(), clients(), st.integers(0, 2**32))
def test_a_service_with_endpoints_of_the_family_never_answers_empty(
    sc: Scenario, who: Client, seed: int
) -> None:
    for qtype, family in ((TYPE_A, 4), (TYPE_AAAA, 6)):
        decision = select(sc.plan, sc.state, WWW, qtype, who, random.Random(seed))
        has_family = any(sc.endpoints(r, family) for r in sc.order)
        assert bool(addresses(decision)) is has_family
