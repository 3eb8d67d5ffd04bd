"""The dnstap query log: a real `gslb serve` samples its queries into a file that BIND's
`dnstap-read` reads back; the writer's queue is bounded."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import pytest

from gslb.dns.querylog import QUEUE_SIZE, QueryLog
from tests.conftest import copy_sample, start_serve

DNSTAP_READ = shutil.which("dnstap-read")


@pytest.mark.skipif(DNSTAP_READ is None, reason="dnstap-read (bind9-dnsutils) is not installed")
def test_one_query_in_n_is_logged_as_dnstap(tmp_path: Path) -> None:
    zones = copy_sample(tmp_path)
    log_path = tmp_path / "queries.dnstap"
    settings = zones / "gslb.yaml"
    settings.write_text(settings.read_text() + f"query_log: {{path: {log_path}, sample: 3}}\n")
    server = start_serve(zones)
    try:
        for i in range(9):
            query = dns.message.make_query(f"q{i}.gslb.example.com", "A")
            dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)
        for _ in range(3):
            query = dns.message.make_query("www.gslb.example.com", "AAAA")
            dns.query.tcp(query, "127.0.0.1", port=server.dns_port, timeout=2)
    finally:
        assert server.stop() == 0  # SIGTERM: the writer drains and closes the stream
    assert DNSTAP_READ is not None
    lines = subprocess.run(
        [DNSTAP_READ, str(log_path)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(lines) == 4, lines  # 12 queries, one in 3
    assert all(" AR 127.0.0.1:" in line for line in lines)
    assert [line.split()[-1] for line in lines] == [
        "q2.gslb.example.com/IN/A",
        "q5.gslb.example.com/IN/A",
        "q8.gslb.example.com/IN/A",
        "www.gslb.example.com/IN/AAAA",
    ]
    assert [" UDP " in line for line in lines] == [True, True, True, False]
    full = subprocess.run(
        [DNSTAP_READ, "-y", str(log_path)], capture_output=True, text=True, check=True
    ).stdout
    assert "identity: ns1.gslb.example.com" in full and "type: AUTH_RESPONSE" in full
    assert full.count("status: NXDOMAIN") == 6  # the replies are in (parsed and as text)


class Stuck:
    """A file whose writes wait until released: the writer thread falls behind."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.entered.set()
        self.release.wait(10)
        self.data += data
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_the_queue_is_bounded_and_the_query_path_never_waits(tmp_path: Path) -> None:
    log = QueryLog(str(tmp_path / "q.dnstap"), 1, b"test", b"gslb test")
    stuck = Stuck()
    log._file = stuck  # type: ignore[assignment]  # from here on every write waits
    query = dns.message.make_query("www.gslb.example.com", "A").to_wire()
    record: Any = log.record
    record("127.0.0.1", False, query, query, 0.0)  # the writer takes it and waits in write
    assert stuck.entered.wait(10)
    for _ in range(2 * QUEUE_SIZE):
        record("127.0.0.1", False, query, query, 0.0)
    assert len(log._queue) == QUEUE_SIZE
    assert log.dropped == QUEUE_SIZE  # bounded: the rest was dropped (counted), not queued
    stuck.release.set()
    log.close()
    assert log.written + log.dropped == 2 * QUEUE_SIZE + 1
