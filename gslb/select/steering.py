"""Steering for one service: rank its regions for a client, pick addresses inside one.

Pure functions over plan values; randomness comes in as a `random.Random`.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from gslb.plan import EndpointPlan, ServicePlan, ServiceRegion
from gslb.select.client import Client
from gslb.state import State

T = TypeVar("T")

EARTH_RADIUS_KM = 6371.0

# Ranking tiers for the geo policy: an explicit subdivision mapping beats a country
# mapping, which beats a continent mapping, which beats plain distance.
TIER_NETWORK, TIER_SUBDIVISION, TIER_COUNTRY, TIER_CONTINENT = 0, 1, 2, 3
TIER_DISTANCE, TIER_UNPLACED = 4, 5
TIER_NAMES = ("network", "subdivision", "country", "continent", "distance", "no location")


@dataclass(frozen=True, slots=True)
class Ranked:
    entry: ServiceRegion
    reason: str  # why it stands where it does, for explain


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance; all arguments in radians."""
    dlat = lat2 - lat1
    dlon = lon2 - lon1
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def rank_geo(entries: Sequence[ServiceRegion], client: Client) -> list[Ranked]:
    """Regions for a client: those serving one of its operator networks first (the
    longest prefix first), then the rest by subdivision, country, continent, distance."""
    first: list[Ranked] = []
    rest = list(entries)
    if client.networks:
        first, rest = _by_network(entries, client.networks)
    return first + _by_location(rest, client)


def _by_network(
    entries: Sequence[ServiceRegion], networks: tuple[str, ...]
) -> tuple[list[Ranked], list[ServiceRegion]]:
    """(regions serving one of `networks`, ranked; the other regions, in order)."""
    keyed = []
    rest = []
    for index, entry in enumerate(entries):
        best = next((i for i, n in enumerate(networks) if n in entry.region.networks), None)
        if best is None:
            rest.append(entry)
        else:
            keyed.append((best, index, entry))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [Ranked(e, f"serves network {networks[best]}") for best, _, e in keyed], rest


def _by_location(entries: Sequence[ServiceRegion], client: Client) -> list[Ranked]:
    loc = client.location
    if loc is None:
        return [Ranked(e, "default order (client location unknown)") for e in entries]
    lat = None if loc.lat is None else math.radians(loc.lat)
    lon = None if loc.lon is None else math.radians(loc.lon)
    keyed: list[tuple[int, float, int, ServiceRegion]] = []
    for index, entry in enumerate(entries):
        region = entry.region
        if loc.subdivision is not None and loc.subdivision in region.subdivisions:
            tier = TIER_SUBDIVISION
        elif loc.country is not None and loc.country in region.countries:
            tier = TIER_COUNTRY
        elif loc.continent is not None and loc.continent in region.continents:
            tier = TIER_CONTINENT
        elif region.lat_rad is None or lat is None:
            tier = TIER_UNPLACED
        else:
            tier = TIER_DISTANCE
        if region.lat_rad is None or region.lon_rad is None or lat is None or lon is None:
            distance = math.inf
        else:
            distance = great_circle_km(lat, lon, region.lat_rad, region.lon_rad)
        keyed.append((tier, distance, index, entry))
    keyed.sort(key=lambda k: (k[0], k[1], k[2]))
    out = []
    for tier, distance, _, entry in keyed:
        where = f"{distance:.0f} km" if math.isfinite(distance) else "distance unknown"
        if tier == TIER_SUBDIVISION:
            why = f"serves subdivision {loc.subdivision} ({where})"
        elif tier == TIER_COUNTRY:
            why = f"serves country {loc.country} ({where})"
        elif tier == TIER_CONTINENT:
            why = f"serves continent {loc.continent} ({where})"
        else:
            why = where
        out.append(Ranked(entry, why))
    return out


def rank_weighted(entries: Sequence[ServiceRegion], rng: random.Random) -> list[Ranked]:
    """Regions in a weighted random order (drawn without replacement)."""
    order = weighted_order(entries, [e.weight for e in entries], rng)
    return [Ranked(e, f"weight {e.weight}") for e in order]


def rank_failover(entries: Sequence[ServiceRegion]) -> list[Ranked]:
    return [Ranked(e, f"failover priority {i + 1}") for i, e in enumerate(entries)]


def weighted_order(items: Sequence[T], weights: Sequence[int], rng: random.Random) -> list[T]:
    """A random permutation where each next item is drawn with probability ∝ its weight.

    Efraimidis–Spirakis keys (u ** (1/w)) give exactly that order in one sort.
    """
    keyed = [(rng.random() ** (1.0 / w), i) for i, w in enumerate(weights)]
    keyed.sort(reverse=True)
    return [items[i] for _, i in keyed]


def rendezvous_order(endpoints: Sequence[EndpointPlan], client_key: bytes) -> list[EndpointPlan]:
    """Highest-random-weight order for one client network (weighted rendezvous hashing).

    Removing an endpoint only moves the clients whose top choice it was, since
    every other endpoint's score for a client is unchanged.
    """

    def score(e: EndpointPlan) -> float:
        digest = hashlib.blake2b(client_key + e.key_bytes, digest_size=8).digest()
        # A uniform draw in (0, 1); -w / ln(u) makes the top choice ∝ weight.
        u = (int.from_bytes(digest, "big") + 1) / 2.0**64
        return -e.weight / math.log(u) if u < 1.0 else math.inf

    return sorted(endpoints, key=score, reverse=True)


def pick(
    picker: str,
    endpoints: Sequence[EndpointPlan],
    answers: int,
    client_key: bytes,
    rng: random.Random,
) -> list[EndpointPlan]:
    """`client_key`: the client's hash network (Client.hash_network), for `hashed`."""
    if not endpoints:
        return []
    if picker == "first":
        return list(endpoints[:answers])
    if picker == "all":
        start = rng.randrange(len(endpoints))
        rotated = list(endpoints[start:]) + list(endpoints[:start])
        return rotated[:answers]
    if picker == "weighted":
        return weighted_order(endpoints, [e.weight for e in endpoints], rng)[:answers]
    return rendezvous_order(endpoints, client_key)[:answers]


def rank(
    service: ServicePlan, entries: Sequence[ServiceRegion], client: Client, rng: random.Random
) -> list[Ranked]:
    if service.policy == "failover":
        return rank_failover(entries)
    if service.policy == "weighted":
        return rank_weighted(entries, rng)
    return rank_geo(entries, client)


def usable_endpoints(entry: ServiceRegion, family: int, state: State) -> tuple[EndpointPlan, ...]:
    endpoints = entry.family(family)
    # Not `region.checked`: an endpoint may carry its own check in a region without one,
    # so whatever is measured down counts wherever it is.
    if not state.down and not state.admin.off_endpoints:
        return endpoints
    return tuple(e for e in endpoints if state.endpoint_usable(e.key))


def enabled_endpoints(entry: ServiceRegion, family: int, state: State) -> tuple[EndpointPlan, ...]:
    """The endpoints an operator left enabled, whatever their measured health."""
    endpoints = entry.family(family)
    disabled = state.admin.off_endpoints
    if not disabled:
        return endpoints
    return tuple(e for e in endpoints if e.key not in disabled)
