"""A service is spelled one way everywhere: `/metrics` labels, `/v1/status`, the admin API;
and its answers carry its policy, so alerts can tell failover's intended skew apart.

A real `gslb serve` with the shipped zones/ is asked for every service, then made to answer
fail-open (every region disabled); the names in the metrics and in the status must agree,
and be spelled as the region files write them (no trailing dot).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Served, copy_sample, start_serve

TOKEN = "service-names-test-token"
REGIONS = ("ap-southeast", "eu-west", "us-east")


def api(served: Served, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{served.api_port}{path}",
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        body: bytes = response.read()
        return json.loads(body) if path != "/metrics" else body.decode()


def service_labels(exposition: str, family: str) -> set[str]:
    return {sample.labels["service"] for sample in samples(exposition, family)}


def samples(exposition: str, family: str) -> list[Any]:
    return [
        sample
        for metric in text_string_to_metric_families(exposition)
        if metric.name == family
        for sample in metric.samples
    ]


def ask(served: Served, name: str) -> None:
    query = dns.message.make_query(name, "A")
    reply = dns.query.udp(query, "127.0.0.1", port=served.dns_port, timeout=3)
    assert reply.answer, reply


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = start_serve(copy_sample(tmp_path), env={"GSLB_API_TOKEN": TOKEN})
    yield server
    server.stop()


def test_metrics_and_status_spell_service_names_alike(served: Served, tmp_path: Path) -> None:
    region_file = yaml.safe_load((tmp_path / "regions" / "eu-west.yaml").read_text())
    configured = set(region_file["services"])
    assert configured == {"www.gslb.example.com", "api.gslb.example.com"}
    for name in sorted(configured):
        ask(served, name)

    status = api(served, "/v1/status")
    in_status = {s for r in status["regions"] for e in r["endpoints"] for s in e["services"]}
    metrics = api(served, "/metrics")
    assert in_status == configured
    assert service_labels(metrics, "gslb_dns_answers") == configured
    assert service_labels(metrics, "gslb_dns_endpoint_answers") == configured

    for region in REGIONS:
        answer = api(served, f"/v1/regions/{region}/disable", "POST")
    fail_open = {entry.split(" IPv")[0] for entry in answer["fail_open"]}
    assert fail_open == configured  # the admin API's answer
    ask(served, "www.gslb.example.com")
    status = api(served, "/v1/status")
    assert {entry.split(" IPv")[0] for entry in status["fail_open_now"]} == configured
    assert service_labels(api(served, "/metrics"), "gslb_dns_fail_open") == {"www.gslb.example.com"}


def test_answer_metrics_carry_the_service_policy(served: Served, tmp_path: Path) -> None:
    zone_file = yaml.safe_load((tmp_path / "gslb.example.com.yaml").read_text())
    policies = {
        f"{name}.{zone_file['zone']}": s["policy"] for name, s in zone_file["services"].items()
    }
    assert set(policies.values()) == {"geo", "failover"}
    for name in sorted(policies):
        ask(served, name)
    found = samples(api(served, "/metrics"), "gslb_dns_answers")
    assert {s.labels["service"]: s.labels["policy"] for s in found} == policies
