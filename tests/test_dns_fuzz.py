"""Fuzzing in the suite: 20,000 mutated queries (seeded) against a real `gslb serve`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Served, start_serve, write_config
from tests.dns_fuzz import corpus, run

ZONE = """
zone: gslb.example.com
soa: {mname: ns1.gslb.example.com, rname: hostmaster.example.com, minimum: 60}
ns: [ns1.gslb.example.com]
records:
  ns1: {A: [192.0.2.53]}
  sub: {NS: [ns.sub.gslb.example.com.]}
  ns.sub: {A: [192.0.2.99]}
services:
  www: {ttl: 30, policy: failover, select: all, answers: 4, regions: [r1]}
"""
REGION = """
region: r1
location: {lat: 50, lon: 8}
services:
  www.gslb.example.com: [192.0.2.10, "2001:db8::10"]
"""
# Cookies and an identity on: the options layer (gslb/dns/server_options.py) is fuzzed too.
SETTINGS = "dns: {cookies: {secret_env: GSLB_FUZZ_COOKIE}, identity: ns1.fuzz.test}\n"
PACKETS = 20_000


# Both UDP paths: recvmmsg batches (the default on Linux) and one recvfrom per datagram.
@pytest.fixture(scope="module", params=["batched", "per-datagram"])
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("fuzz")
    write_config(
        directory,
        {"gslb.yaml": SETTINGS, "gslb.example.com.yaml": ZONE, "regions/r1.yaml": REGION},
    )
    served = start_serve(
        directory,
        env={"GSLB_UDP_BATCH": "0"} if request.param != "batched" else {},
        log=directory / "serve.log",
    )
    yield served
    served.stop()


def test_the_corpus_is_seeded_and_varied() -> None:
    first = list(corpus(7, 2000))
    assert first == list(corpus(7, 2000))
    assert len(set(first)) > 1700  # truncations to a few bytes repeat
    assert any(len(p) < 12 for p in first) and any(len(p) > 100 for p in first)


def test_fuzzed_queries_never_break_the_server(server: Served) -> None:
    outcome = run(
        "127.0.0.1", server.dns_port, corpus(20261202, PACKETS), pause_pid=server.process.pid
    )
    print(outcome.sent, outcome.replies, outcome.windows, f"{outcome.seconds:.1f}s")
    assert outcome.sent == PACKETS
    assert outcome.valid_missed == 0  # every window's valid query was answered
    assert not outcome.unparsable, outcome.unparsable[:3]
    assert outcome.replies > PACKETS // 4  # most packets get an answer (FORMERR or other)
    assert server.process.poll() is None
    log = (server.config_dir / "serve.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    assert len(log.splitlines()) < 200  # rate-limited: a line per kind per interval
