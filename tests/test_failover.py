"""Health checks and region failover end to end: real HTTP endpoints, real DNS, real API."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import DEMO_DB, Served, start_serve, write_config
from tests.helpers_http import HealthServer, free_port

TOKEN = "test-token-1234"
INTERVAL, TIMEOUT, FALL, RISE = 0.2, 0.15, 2, 2
DETECT = INTERVAL * FALL + TIMEOUT  # the promised detection time
SLACK = 1.5  # scheduling slack on a busy 2-core machine

REGIONS = {
    "us-east": (["127.0.1.1", "127.0.1.2"], "lat: 39.0, lon: -77.5", "continents: [NA, SA]"),
    "eu-west": (["127.0.2.1", "127.0.2.2"], "lat: 53.3, lon: -6.3", "continents: [EU, AF]"),
    "ap-southeast": (["127.0.3.1", "127.0.3.2"], "lat: 1.35, lon: 103.8", "continents: [AS, OC]"),
}
EU_CLIENT, NA_CLIENT = "81.2.69.0", "8.8.8.0"


def config_files(port: int, state: Path) -> dict[str, str]:
    files = {
        "gslb.yaml": f"""
            geoip: {{database: {DEMO_DB}}}
            state: {{path: {state}}}
            api: {{token_env: GSLB_TEST_TOKEN}}
        """,
        "gslb.example.com.yaml": """
            zone: gslb.example.com
            soa: {mname: ns1.gslb.example.com, rname: hostmaster.example.com}
            ns: [ns1.gslb.example.com]
            records:
              ns1: {A: [192.0.2.53]}
            services:
              www: {ttl: 5, policy: geo, select: all, answers: 4,
                    regions: [us-east, eu-west, ap-southeast]}
        """,
    }
    for name, (addresses, location, serves) in REGIONS.items():
        endpoints = "\n".join(f"    - {a}" for a in addresses)
        files[f"regions/{name}.yaml"] = (
            f"region: {name}\nlocation: {{{location}}}\nserves: {{{serves}}}\n"
            f"health: {{type: http, path: /health, port: {port}, interval: {INTERVAL}s, "
            f"timeout: {TIMEOUT}s, rise: {RISE}, fall: {FALL}}}\n"
            f"services:\n  www.gslb.example.com:\n{endpoints}\n"
        )
    return files


class Topology:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        addresses = [a for addrs, _, _ in REGIONS.values() for a in addrs]
        self.port = free_port(addresses)
        self.endpoints = {a: HealthServer(a, self.port).start() for a in addresses}
        write_config(directory, config_files(self.port, directory / "state.json"))
        self.served = self.start()

    def start(self) -> Served:
        served = start_serve(self.directory, env={"GSLB_TEST_TOKEN": TOKEN})
        self.served = served
        self.wait_all_checked()
        return served

    def wait_all_checked(self, within: float = 5.0) -> None:
        """Until every endpoint has its first health result (the API says none is pending)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            _, body = self.api("GET", "/v1/status")
            states = [e["health"] for r in body["regions"] for e in r["endpoints"]]
            if "pending" not in states:
                return
            time.sleep(0.05)
        raise AssertionError("health checks did not report within 5 s")

    def restart(self) -> None:
        assert self.served.stop() == 0
        self.served = self.start()

    def close(self) -> None:
        self.served.stop()
        for server in self.endpoints.values():
            server.stop()

    def answer(self, client: str = EU_CLIENT) -> set[str]:
        query = dns.message.make_query(
            "www.gslb.example.com",
            "A",
            use_edns=0,
            options=[dns.edns.ECSOption(client, 24)],
        )
        reply = dns.query.udp(query, "127.0.0.1", port=self.served.dns_port, timeout=2)
        assert reply.rcode() == dns.rcode.NOERROR
        return {rd.address for rrset in reply.answer for rd in rrset}

    def api(
        self, method: str, path: str, body: bytes | None = None, token: str | None = TOKEN
    ) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.served.api_port}{path}", data=body, method=method
        )
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                raw = response.read()
                status = response.status
                ctype = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raw, status, ctype = exc.read(), exc.code, exc.headers.get("Content-Type", "")
        return status, json.loads(raw) if "json" in ctype else raw.decode()

    def wait_for_answer(self, predicate: Callable[[set[str]], bool], within: float) -> float:
        """Seconds until the DNS answer satisfies `predicate`; fails after `within`."""
        started = time.monotonic()
        last: set[str] = set()
        while time.monotonic() - started < within:
            last = self.answer()
            if predicate(last):
                return time.monotonic() - started
            time.sleep(0.02)
        raise AssertionError(f"answer still {sorted(last)} after {within:.1f}s")


@pytest.fixture
def topo(tmp_path: Path) -> Iterator[Topology]:
    topology = Topology(tmp_path)
    yield topology
    topology.close()


def eu(answer: set[str]) -> bool:
    return bool(answer) and all(a.startswith("127.0.2.") for a in answer)


def us(answer: set[str]) -> bool:
    return bool(answer) and all(a.startswith("127.0.1.") for a in answer)


def test_region_leaves_when_its_endpoints_stop_and_returns(topo: Topology) -> None:
    topo.wait_for_answer(lambda a: a == {"127.0.2.1", "127.0.2.2"}, 5)
    assert us(topo.answer(NA_CLIENT))
    for address in ("127.0.2.1", "127.0.2.2"):
        topo.endpoints[address].stop()
    stopped = time.monotonic()
    topo.wait_for_answer(us, DETECT + SLACK)  # the next nearest region takes over
    assert time.monotonic() - stopped <= DETECT + SLACK
    for address in ("127.0.2.1", "127.0.2.2"):
        topo.endpoints[address].start()
    topo.wait_for_answer(eu, INTERVAL * (RISE + 1) + TIMEOUT + SLACK)


def test_one_failing_endpoint_leaves_the_answer(topo: Topology) -> None:
    topo.wait_for_answer(lambda a: a == {"127.0.2.1", "127.0.2.2"}, 5)
    topo.endpoints["127.0.2.1"].status = 503
    topo.wait_for_answer(lambda a: a == {"127.0.2.2"}, DETECT + SLACK)
    status, body = topo.api("GET", "/v1/status")
    assert status == 200
    eu_west = next(r for r in body["regions"] if r["name"] == "eu-west")
    by_address = {e["address"]: e for e in eu_west["endpoints"]}
    assert by_address["127.0.2.1"]["health"] == "down"
    assert by_address["127.0.2.1"]["detail"] == "HTTP 503"
    assert by_address["127.0.2.2"]["health"] == "up"
    topo.endpoints["127.0.2.1"].status = 200
    topo.wait_for_answer(lambda a: a == {"127.0.2.1", "127.0.2.2"}, 5)


def test_admin_disable_is_immediate_and_survives_restart(topo: Topology) -> None:
    topo.wait_for_answer(eu, 5)
    status, body = topo.api(
        "POST", "/v1/regions/eu-west/disable", json.dumps({"reason": "maintenance"}).encode()
    )
    assert status == 200, body
    assert body["admin"] == "disabled" and body["fail_open"] == []
    assert us(topo.answer())  # the very next query, no waiting
    topo.restart()
    assert us(topo.answer())
    status, body = topo.api("GET", "/v1/status")
    assert {r["name"]: r["admin"] for r in body["regions"]}["eu-west"] == "disabled"
    status, body = topo.api("POST", "/v1/regions/eu-west/enable")
    assert status == 200
    assert eu(topo.answer())


def test_drain_and_endpoint_disable(topo: Topology) -> None:
    topo.wait_for_answer(eu, 5)
    status, body = topo.api("POST", "/v1/regions/eu-west/drain")
    assert status == 200 and body["admin"] == "draining"
    assert us(topo.answer())
    status, body = topo.api("GET", "/v1/status")
    eu_west = next(r for r in body["regions"] if r["name"] == "eu-west")
    assert eu_west["admin"] == "draining" and not eu_west["usable"]
    assert body["recent_actions"][0]["action"] == "region draining"
    topo.api("POST", "/v1/regions/eu-west/enable")
    status, body = topo.api("POST", "/v1/regions/eu-west/endpoints/127.0.2.1/disable")
    assert status == 200, body
    assert topo.answer() == {"127.0.2.2"}
    topo.api("POST", "/v1/regions/eu-west/endpoints/127.0.2.1/enable")
    assert topo.answer() == {"127.0.2.1", "127.0.2.2"}


def test_disabling_every_region_fails_open_and_says_so(topo: Topology) -> None:
    topo.wait_for_answer(eu, 5)
    for region in ("us-east", "ap-southeast"):
        assert topo.api("POST", f"/v1/regions/{region}/disable")[0] == 200
    status, body = topo.api("POST", "/v1/regions/eu-west/disable")
    assert status == 200
    assert body["fail_open"] == ["www.gslb.example.com IPv4"]
    assert "fail-open" in body["warning"]
    assert eu(topo.answer())  # fail open: as if all were healthy, nearest first
    metrics = topo.api("GET", "/metrics")[1]
    assert 'gslb_dns_fail_open_total{service="www.gslb.example.com"}' in metrics


def test_api_auth_and_errors(topo: Topology) -> None:
    assert topo.api("POST", "/v1/regions/eu-west/disable", token=None)[0] == 401
    status, body = topo.api("POST", "/v1/regions/eu-west/disable", token="wrong")
    assert status == 401 and "token" in body["error"]
    status, body = topo.api("POST", "/v1/regions/nowhere/disable")
    assert status == 404 and "nowhere" in body["error"]
    status, body = topo.api("POST", "/v1/regions/eu-west/endpoints/10.9.9.9/disable")
    assert status == 404
    status, body = topo.api("POST", "/v1/regions/eu-west/disable", b"{not json")
    assert status == 400 and "JSON" in body["error"]
    status, body = topo.api("POST", "/v1/regions/eu-west/disable", b'{"why": 1}')
    assert status == 400
    status, body = topo.api("GET", "/v1/explain?name=www.gslb.example.com")
    assert status == 400
    status, body = topo.api("GET", "/v1/nothing")
    assert status == 404 and "error" in body
    assert eu(topo.answer())  # none of that changed anything


def test_explain_api(topo: Topology) -> None:
    status, body = topo.api(
        "GET", "/v1/explain?name=www.gslb.example.com&type=A&client=81.2.69.0/24"
    )
    assert status == 200
    assert body["region"] == "eu-west"
    assert body["client"]["location"]["country"] == "GB"
    assert any(step["step"] == "ranking" for step in body["steps"])
    assert body["ecs_scope"] is not None and body["ecs_scope"] <= 24


def test_reload_good_and_bad(topo: Topology) -> None:
    zone = topo.directory / "gslb.example.com.yaml"
    original = zone.read_text()
    zone.write_text(
        original.replace(
            "ns1: {A: [192.0.2.53]}", "ns1: {A: [192.0.2.53]}\n  new: {A: [192.0.2.77]}"
        )
    )
    status, body = topo.api("POST", "/v1/reload")
    assert status == 200 and body["ok"] and body["generation"] == 2
    query = dns.message.make_query("new.gslb.example.com", "A")
    reply = dns.query.udp(query, "127.0.0.1", port=topo.served.dns_port, timeout=2)
    assert [rd.address for rrset in reply.answer for rd in rrset] == ["192.0.2.77"]
    zone.write_text(original + "bogus_key: 1\n")
    status, body = topo.api("POST", "/v1/reload")
    assert status == 422 and not body["ok"]
    assert any(e.startswith(f"{topo.directory}/gslb.example.com.yaml:") for e in body["errors"])
    reply = dns.query.udp(query, "127.0.0.1", port=topo.served.dns_port, timeout=2)
    assert reply.answer  # the old config keeps serving
    zone.write_text(original)
    topo.served.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        reply = dns.query.udp(query, "127.0.0.1", port=topo.served.dns_port, timeout=2)
        if reply.rcode() == dns.rcode.NXDOMAIN:
            break
        time.sleep(0.05)
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert eu(topo.answer())  # health state kept across reloads
    metrics = topo.api("GET", "/metrics")[1]
    assert 'gslb_config_reloads_total{result="error"} 1.0' in metrics
    assert "gslb_config_generation 3.0" in metrics


def test_metrics_scrape(topo: Topology) -> None:
    topo.wait_for_answer(eu, 5)
    for _ in range(5):
        topo.answer(NA_CLIENT)
    status, text = topo.api("GET", "/metrics")
    assert status == 200
    assert (
        'gslb_dns_answers_total{policy="geo",region="us-east",service="www.gslb.example.com"}'
        in text
    )
    assert 'gslb_dns_queries_total{qtype="A",rcode="NOERROR",zone="gslb.example.com."}' in text
    assert 'gslb_endpoint_up{endpoint="127.0.2.1",region="eu-west"} 1.0' in text
    assert 'gslb_region_admin_state{region="eu-west",state="enabled"} 1.0' in text
    assert "gslb_dns_query_duration_seconds_bucket" in text
    assert 'gslb_health_checks_total{region="eu-west",result="ok"}' in text
    assert "gslb_health_check_duration_seconds_bucket" in text
    assert topo.api("GET", "/healthz")[0] == 200


def test_corrupt_state_file_is_reported_not_fatal(topo: Topology) -> None:
    topo.served.stop()
    (topo.directory / "state.json").write_text("{this is not json")
    topo.served = topo.start()
    topo.wait_for_answer(eu, 5)
    status, body = topo.api("GET", "/v1/status")
    assert status == 200
    assert all(r["admin"] == "enabled" for r in body["regions"])


def test_mutations_refused_without_a_configured_token(tmp_path: Path) -> None:
    write_config(tmp_path, config_files(free_port(["127.0.0.1"]), tmp_path / "s.json"))
    served = start_serve(tmp_path, env={"GSLB_TEST_TOKEN": ""})
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{served.api_port}/v1/regions/eu-west/disable",
            method="POST",
            headers={"Authorization": "Bearer anything"},
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 403
        assert "no API token" in json.loads(info.value.read())["error"]
    finally:
        served.stop()


def test_two_nodes_sharing_a_state_file_agree(topo: Topology) -> None:
    other = start_serve(topo.directory, env={"GSLB_TEST_TOKEN": TOKEN})
    try:

        def answer_from_other() -> set[str]:
            query = dns.message.make_query(
                "www.gslb.example.com",
                "A",
                use_edns=0,
                options=[dns.edns.ECSOption(EU_CLIENT, 24)],
            )
            reply = dns.query.udp(query, "127.0.0.1", port=other.dns_port, timeout=2)
            return {rd.address for rrset in reply.answer for rd in rrset}

        assert eu(answer_from_other())
        assert topo.api("POST", "/v1/regions/eu-west/disable")[0] == 200
        deadline = time.monotonic() + 5
        while not us(answer_from_other()):
            assert time.monotonic() < deadline, "the other node never saw the change"
            time.sleep(0.05)
    finally:
        other.stop()
