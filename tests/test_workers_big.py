"""`--workers 2` with a 5,000-endpoint config: every reload reaches every worker whole
(the pickled plan is larger than the pipe's buffer) and no query goes unanswered."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import Served, copy_sample, start_serve

TOKEN = "big-token"
ENDPOINTS = 5000


def big_region(ttl: int) -> str:
    lines = ["region: eu-west", "location: {lat: 53.35, lon: -6.26}", "serves: {continents: [EU]}"]
    lines += ["services:", "  www.gslb.example.com:", "    - {address: 198.51.100.10}"]
    lines += ["  api.gslb.example.com:"]
    lines += [f'    - {{address: "2001:db8:e::{i:x}"}}' for i in range(1, ENDPOINTS + 1)]
    lines += [f"# generation {ttl}"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    zones = copy_sample(tmp_path)
    (zones / "regions" / "eu-west.yaml").write_text(big_region(0))
    log = tmp_path / "serve.log"
    server = start_serve(zones, "--workers", "2", env={"GSLB_API_TOKEN": TOKEN}, log=log)
    yield server
    server.stop()


def api(served: Served, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{served.api_port}{path}",
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_reloads_of_a_big_config_lose_no_query(served: Served) -> None:
    region_file = served.config_dir / "regions" / "eu-west.yaml"
    pids = api(served, "/v1/status")["dns_workers"]["pids"]
    stop = threading.Event()
    asked = lost = 0

    def ask_all_the_time() -> None:
        nonlocal asked, lost
        query = dns.message.make_query("ns1.gslb.example.com", "A")
        while not stop.is_set():
            asked += 1
            try:
                reply = dns.query.udp(query, "127.0.0.1", port=served.dns_port, timeout=1.0)
                assert reply.rcode() == dns.rcode.NOERROR
            except dns.exception.Timeout:
                lost += 1

    asker = threading.Thread(target=ask_all_the_time)
    asker.start()
    try:
        for generation in range(1, 6):
            region_file.write_text(big_region(generation))
            api(served, "/v1/reload", method="POST")
    finally:
        stop.set()
        asker.join()
    workers = api(served, "/v1/status")["dns_workers"]
    assert workers["restarts"] == 0 and sorted(workers["pids"]) == sorted(pids)
    assert asked > 50 and lost == 0, f"{lost} of {asked} queries lost"
