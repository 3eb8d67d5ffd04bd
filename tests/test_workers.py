"""`gslb serve --workers 2`: several DNS processes on one port, one brain."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import Served, copy_sample, start_serve

TOKEN = "workers-token"
EU = {"198.51.100.10", "198.51.100.11"}
US = {"192.0.2.10", "192.0.2.11"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = start_serve(copy_sample(tmp_path), "--workers", "2", env={"GSLB_API_TOKEN": TOKEN})
    yield server
    server.stop()


def api(served: Served, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{served.api_port}{path}",
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return (
            json.loads(response.read())
            if "json" in response.headers["Content-Type"]
            else response.read().decode()
        )


def answer(served: Served, subnet: str = "81.2.69.0") -> set[str]:
    query = dns.message.make_query(
        "www.gslb.example.com", "A", use_edns=0, options=[dns.edns.ECSOption(subnet, 24)]
    )
    reply = dns.query.udp(query, "127.0.0.1", port=served.dns_port, timeout=2)
    assert reply.rcode() == dns.rcode.NOERROR
    return {rd.address for rrset in reply.answer for rd in rrset}


def eventually(check: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def queries_counted(served: Served) -> float:
    text = api(served, "/metrics")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gslb_dns_queries_total{")
    )


def test_workers_answer_and_their_counters_add_up(served: Served) -> None:
    status = api(served, "/v1/status")
    assert len(status["dns_workers"]["pids"]) == 2
    for _ in range(200):  # each query from a new source port: the kernel spreads them
        assert answer(served) <= EU
    eventually(lambda: queries_counted(served) == 200)
    per_worker = api(served, "/v1/status")["dns_workers"]["queries"]
    assert sum(per_worker) == 200 and min(per_worker) > 0, per_worker  # both took a share


def test_admin_change_reaches_every_worker(served: Served) -> None:
    assert answer(served) <= EU
    api(served, "/v1/regions/eu-west/disable", method="POST")
    started = time.monotonic()
    # Every worker must have it: 50 queries in a row from fresh ports, all us-east.
    eventually(lambda: all(answer(served) <= US for _ in range(50)), within=1.0)
    assert time.monotonic() - started < 1.0


def test_a_killed_worker_is_started_again(served: Served) -> None:
    pids = api(served, "/v1/status")["dns_workers"]["pids"]
    os.kill(pids[0], signal.SIGKILL)

    def replaced() -> bool:
        workers = api(served, "/v1/status")["dns_workers"]
        return (
            workers["restarts"] == 1
            and pids[0] not in workers["pids"]
            and len(workers["pids"]) == 2
        )

    eventually(replaced, within=15)
    for _ in range(100):
        assert answer(served) <= EU
