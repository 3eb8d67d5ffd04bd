"""Steering by operator network and by subdivision (`serves: {networks: [...],
subdivisions: [US-CA]}`): a GeoIP2-City database with subdivisions, a real `gslb serve`,
clients in two US states and in an operator's network inside one of them."""

from __future__ import annotations

import ipaddress
import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import dns.edns
import dns.message
import dns.query
import pytest

from gslb.geo import GeoDatabase
from gslb.netrules import NetworkRules
from tests.conftest import start_serve, write_config
from tests.test_geo import write_db

ZONE = """
zone: example.com
ns: [ns1.example.com]
records:
  ns1: {A: 192.0.2.1}
services:
  www: {ttl: 30, policy: geo, select: all, answers: 1}
"""
REGIONS = {
    # us-west serves California by name; us-east serves the rest of the US by country and is
    # nearer to the New York client; eu-west is nearest to nobody here.
    "regions/us-west.yaml": """
region: us-west
location: {lat: 37.4, lon: -122.1}
serves: {subdivisions: [us-ca]}
services:
  www.example.com: [192.0.2.20]
""",
    "regions/us-east.yaml": """
region: us-east
location: {lat: 39.0, lon: -77.5}
serves: {countries: [US]}
services:
  www.example.com: [192.0.2.10]
""",
    "regions/eu-west.yaml": """
region: eu-west
location: {lat: 53.3, lon: -6.3}
serves: {continents: [EU]}
services:
  www.example.com: [198.51.100.10]
""",
}
CALIFORNIA, NEW_YORK, NEVADA = "198.18.1.0", "198.18.2.0", "198.18.3.0"


def city(subdivision: str | None, lat: float, lon: float) -> dict[str, object]:
    record: dict[str, object] = {
        "country": {"iso_code": "US"},
        "continent": {"code": "NA"},
        "location": {"latitude": lat, "longitude": lon},
    }
    if subdivision is not None:
        record["subdivisions"] = [{"iso_code": subdivision}]
    return record


@pytest.fixture
def database(tmp_path: Path) -> str:
    return write_db(
        tmp_path / "city.mmdb",
        {
            "198.18.1.0/24": city("CA", 34.05, -118.24),  # Los Angeles
            "198.18.2.0/24": city("NY", 40.71, -74.0),
            # Reno, Nevada: nearer us-west, but only California is mapped to it by name.
            "198.18.3.0/24": city("NV", 39.5, -119.8),
        },
    )


def test_the_database_gives_the_subdivision(database: str) -> None:
    with GeoDatabase(database) as db:
        located = db.lookup(CALIFORNIA)
        assert located is not None and located.subdivision == "US-CA"


def ask(port: int, subnet: str, source: int = 24) -> tuple[str, int]:
    option = dns.edns.ECSOption(subnet, source)
    query = dns.message.make_query("www.example.com", "A", use_edns=0, options=[option])
    reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=3)
    scope = next(o.scopelen for o in reply.options if isinstance(o, dns.edns.ECSOption))
    return str(reply.answer[0][0]), scope


def test_a_subdivision_beats_the_country_and_distance(tmp_path: Path, database: str) -> None:
    directory = write_config(
        tmp_path / "zones",
        {"gslb.yaml": f"geoip: {{database: {database}}}\n", "example.com.yaml": ZONE, **REGIONS},
    )
    server = start_serve(directory)
    try:
        for _ in range(3):  # the second and third rounds come from the answer cache
            assert ask(server.dns_port, CALIFORNIA) == ("192.0.2.20", 24)  # by subdivision
            assert ask(server.dns_port, NEW_YORK) == ("192.0.2.10", 24)  # by country
            # Nevada is nearer us-west, but the country mapping of us-east comes first.
            assert ask(server.dns_port, NEVADA) == ("192.0.2.10", 24)
    finally:
        server.stop()
    explained = subprocess_explain(directory, CALIFORNIA)
    assert "US (US-CA)/NA" in explained and "serves subdivision US-CA" in explained


def subprocess_explain(directory: Path, client: str) -> str:
    import subprocess
    import sys

    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gslb",
            "explain",
            "www.example.com",
            "--client",
            f"{client}/24",
            "--config",
            str(directory),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_network_rules_match_longest_first_and_scope_is_never_split() -> None:
    net = ipaddress.ip_network
    rules = NetworkRules.build([net("10.0.0.0/8"), net("10.1.0.0/16"), net("10.1.2.0/25")])
    address = ipaddress.ip_address
    assert rules.matching(address("10.1.2.3")) == ("10.1.2.0/25", "10.1.0.0/16", "10.0.0.0/8")
    assert rules.matching(address("10.9.9.9")) == ("10.0.0.0/8",)
    assert rules.matching(address("192.0.2.1")) == ()
    # A /24 from the GeoIP database inside which a /25 rule lies: the answer holds for /25.
    assert rules.scope(address("10.1.2.0"), 24) == 25
    assert rules.scope(address("10.1.2.128"), 24) == 25
    # Far from every rule boundary the known prefix stands; a client known to /12 only
    # gets the shortest block around it that no longer rule splits: /16 holds a /25, /21 not.
    assert rules.scope(address("10.1.9.0"), 24) == 24
    assert rules.scope(address("10.1.9.0"), 12) == 21
    assert rules.scope(address("192.0.2.0"), 24) == 24
    assert rules.scope(address("10.200.0.0"), 0) == 9  # 10.128.0.0/9 holds no longer rule
    assert not NetworkRules.build([])


def status(port: int | None) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/status", timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_an_operator_network_beats_every_geoip_mapping(tmp_path: Path, database: str) -> None:
    regions = dict(REGIONS)
    ruled = regions["regions/eu-west.yaml"].replace(
        "serves: {continents: [EU]}", "serves: {continents: [EU], networks: [198.18.1.0/25]}"
    )
    regions["regions/eu-west.yaml"] = ruled
    directory = write_config(
        tmp_path / "zones",
        {"gslb.yaml": f"geoip: {{database: {database}}}\n", "example.com.yaml": ZONE, **regions},
    )
    server = start_serve(directory)
    try:
        for _ in range(2):  # the second round from the answer cache
            # Inside the rule: eu-west, for the rule's /25 only (it splits the /24).
            assert ask(server.dns_port, CALIFORNIA, 25) == ("198.51.100.10", 25)
            # The other half of the database's /24: California again, also for a /25.
            assert ask(server.dns_port, "198.18.1.128", 25) == ("192.0.2.20", 25)
            # A /24 subnet is matched by its first address (the scope cannot exceed it).
            assert ask(server.dns_port, CALIFORNIA) == ("198.51.100.10", 24)
            assert ask(server.dns_port, NEW_YORK) == ("192.0.2.10", 24)
        regions_now: Any = status(server.api_port)["regions"]
        eu = next(r for r in regions_now if r["name"] == "eu-west")
        assert eu["serves"]["networks"] == ["198.18.1.0/25"]
        explained = subprocess_explain(directory, "198.18.1.0")
        assert "serves network 198.18.1.0/25" in explained
        # The rule gone (a reload), the client goes where GeoIP puts it: nothing cached stays.
        (directory / "regions/eu-west.yaml").write_text(REGIONS["regions/eu-west.yaml"])
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while status(server.api_port)["generation"] != 2:
            assert time.monotonic() < deadline, "the reload did not happen"
            time.sleep(0.05)
        assert ask(server.dns_port, CALIFORNIA, 25) == ("192.0.2.20", 24)
    finally:
        server.stop()
