"""Shares of the last minute and 5 minutes in /v1/status: they follow a failover, while
the counts since start remember it.

The whole runtime runs in the test process with a fake clock for the windows, so the test
moves the window boundary itself; the queries and API calls go over real sockets. A real
`gslb serve` process shows the same fields moving with its own clock.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.edns
import dns.message
import dns.query
import pytest

from tests.conftest import Served, copy_sample, start_serve
from tests.runtime_inprocess import FakeClock, InProcess, running

TOKEN = "status-windows-test-token"
EUROPE = "81.2.69.0"  # the demo database's Europe: eu-west, then us-east
WWW = "www.gslb.example.com"
EU_WEST = {"198.51.100.10", "198.51.100.11"}
US_EAST = {"192.0.2.10", "192.0.2.11"}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[InProcess, FakeClock]]:
    clock = FakeClock()
    with running(
        copy_sample(tmp_path / "zones"), clock=clock, environ={"GSLB_API_TOKEN": TOKEN}
    ) as served:
        yield served, clock


def region(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in status["regions"] if r["name"] == name)


def service_region(status: dict[str, Any], service: str, name: str) -> dict[str, Any]:
    found = next(s for s in status["services"] if s["name"] == service)
    return next(r for r in found["regions"] if r["name"] == name)


def ask_europe(node: InProcess, n: int, expected: set[str]) -> None:
    for _ in range(n):
        assert node.ask(WWW, EUROPE) <= expected


def test_the_last_minute_follows_a_failover_and_since_start_remembers(
    node: tuple[InProcess, FakeClock],
) -> None:
    served, clock = node
    ask_europe(served, 10, EU_WEST)
    assert served.ask("api.gslb.example.com", EUROPE) == {"192.0.2.20"}  # failover: us-east
    status = served.status()
    eu = region(status, "eu-west")
    assert eu["last_1m"] == eu["last_5m"] == {"answers": 10, "share": 10 / 11}
    assert (eu["answers"], eu["share"]) == (10, 10 / 11)
    assert service_region(status, WWW, "eu-west")["last_1m"] == {"answers": 10, "share": 1.0}
    assert status["windows"]["last_1m"] == {
        "seconds": 60,
        "covered_seconds": 0.0,
        "steered_answers": 11,
    }

    clock.advance(30)
    assert served.post("/v1/regions/eu-west/disable")["admin"] == "disabled"
    ask_europe(served, 10, US_EAST)
    status = served.status()
    assert service_region(status, WWW, "eu-west")["last_1m"] == {"answers": 10, "share": 0.5}
    assert service_region(status, WWW, "us-east")["last_1m"] == {"answers": 10, "share": 0.5}

    clock.advance(31)  # second 61: the answers of second 0 left the last minute
    ask_europe(served, 10, US_EAST)
    status = served.status()
    www_eu = service_region(status, WWW, "eu-west")
    assert www_eu["last_1m"] == {"answers": 0, "share": 0.0}
    assert www_eu["last_5m"] == {"answers": 10, "share": 10 / 30}
    assert (www_eu["answers"], www_eu["share"]) == (10, 10 / 30)  # since start: still there
    assert service_region(status, WWW, "us-east")["last_1m"] == {"answers": 20, "share": 1.0}
    eu = region(status, "eu-west")  # pooled over www and api
    assert eu["last_1m"] == {"answers": 0, "share": 0.0}
    assert eu["share"] == pytest.approx(10 / 31) and eu["share"] > 0
    assert region(status, "us-east")["last_1m"] == {"answers": 20, "share": 1.0}
    www = next(s for s in status["services"] if s["name"] == WWW)
    assert www["policy"] == "geo"
    assert [r["name"] for r in www["regions"]] == ["us-east", "eu-west", "ap-southeast"]
    assert (www["answers"], www["last_1m"], www["last_5m"]) == (
        30,
        {"answers": 20},
        {"answers": 30},
    )
    assert status["windows"]["last_1m"]["covered_seconds"] == 60
    assert status["windows"]["last_5m"]["covered_seconds"] == 61
    assert status["counts"]["steered_answers"] == 31

    clock.advance(300)  # nothing left in either window; since start is unchanged
    status = served.status()
    assert region(status, "us-east")["last_5m"] == {"answers": 0, "share": 0.0}
    assert status["windows"]["last_5m"]["steered_answers"] == 0
    assert region(status, "us-east")["answers"] == 21


@pytest.fixture(scope="module")
def process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start_serve(copy_sample(tmp_path_factory.mktemp("zones")))
    yield served
    served.stop()


def status_of(served: Served) -> dict[str, Any]:
    url = f"http://127.0.0.1:{served.api_port}/v1/status"
    with urllib.request.urlopen(url, timeout=5) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def test_a_real_server_reports_the_windows_and_they_move(process: Served) -> None:
    before = status_of(process)
    assert before["windows"]["last_1m"]["seconds"] == 60
    assert before["windows"]["last_5m"]["seconds"] == 300
    eu_before = region(before, "eu-west")["last_1m"]["answers"]
    query = dns.message.make_query(WWW, "A", use_edns=0, options=[dns.edns.ECSOption(EUROPE, 24)])
    for _ in range(5):  # the first answer from the full path, then from the cache
        dns.query.udp(query, "127.0.0.1", port=process.dns_port, timeout=2)
    after = status_of(process)
    assert region(after, "eu-west")["last_1m"]["answers"] == eu_before + 5
    assert region(after, "eu-west")["last_5m"]["answers"] >= 5
    assert service_region(after, WWW, "eu-west")["last_1m"]["share"] == 1.0
    assert after["windows"]["last_1m"]["steered_answers"] >= 5
