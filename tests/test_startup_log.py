"""What `gslb serve` logs: what it started with (INFO), recoveries at INFO, failures above.

Each test runs a real `gslb serve` with its log (stderr) in a file and reads the file.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import maxminddb
import pytest

from gslb.config import load_config
from gslb.geo import NoGeo
from gslb.startup import startup_lines
from tests.cluster_harness import ETCD, EtcdCluster, wait_until
from tests.conftest import DEMO_DB, ROOT, Served, copy_sample, start_serve, write_config
from tests.helpers_http import HealthServer, free_port

TOKEN = "startup-log-token-never-logged"
ZONE = """
    zone: example.test
    soa: {mname: ns1.example.test, rname: hostmaster.example.test}
    ns: [ns1.example.test]
    records:
      ns1: {A: [192.0.2.53]}
    services:
      www: {ttl: 5, regions: [eu-west]}
"""


def region(address: str, health: str = "") -> str:
    return (
        "region: eu-west\nlocation: {lat: 53.3, lon: -6.3}\n"
        + (f"health: {health}\n" if health else "")
        + f"services:\n  www.example.test:\n    - {address}\n"
    )


def log_lines(path: Path) -> list[str]:
    """The log's lines without their time stamps: "LEVEL logger: message"."""
    return [line.split(" ", 2)[2] for line in path.read_text().splitlines() if line.count(" ") >= 2]


def status(served: Served) -> dict[str, Any]:
    url = f"http://127.0.0.1:{served.api_port}/v1/status"
    with urllib.request.urlopen(url, timeout=5) as response:
        body: dict[str, Any] = json.loads(response.read())
    return body


def until(served: Served, check: Callable[[dict[str, Any]], bool], what: str) -> None:
    """Poll the API: health flips and etcd sessions happen on timers, with no event to await."""
    wait_until(lambda: check(status(served)), 20, what, step=0.05)


def test_serve_logs_zones_counts_geoip_and_where_the_token_is_from(tmp_path: Path) -> None:
    zones = copy_sample(tmp_path / "zones")
    log = tmp_path / "serve.log"
    served = start_serve(zones, env={"GSLB_API_TOKEN": TOKEN}, log=log)
    assert served.stop() == 0
    config = load_config(str(zones))
    services = sum(len(zone.services) for zone in config.zones)
    with maxminddb.open_database(str(DEMO_DB)) as database:
        epoch = database.metadata().build_epoch
        kind = database.metadata().database_type
    built = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    lines = log_lines(log)
    for expected in (
        f"INFO gslb.runtime: serving 1 zone(s): gslb.example.com; {services} service(s), "
        "3 region(s)",
        f"INFO gslb.runtime: GeoIP database {DEMO_DB} ({kind}, built {built})",
        "INFO gslb.runtime: API token from the environment variable GSLB_API_TOKEN",
    ):
        assert expected in lines, "\n".join(lines)
    assert not any("cluster" in line for line in lines), "\n".join(lines)
    assert TOKEN not in log.read_text()


@pytest.mark.skipif(ETCD is None, reason="etcd is not installed (Debian: etcd-server)")
def test_serve_logs_the_token_file_and_cluster_mode_and_etcd_back_is_info(
    tmp_path: Path,
) -> None:
    etcd = EtcdCluster(tmp_path / "etcd")
    (tmp_path / "etcd").mkdir()
    etcd.start(size=1)
    served = None
    try:
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        endpoint = etcd.endpoints[0]
        zones = write_config(
            tmp_path / "zones",
            {
                "gslb.yaml": f"""
                    api: {{token_env: GSLB_STARTUP_TEST_UNSET, token_file: {token_file}}}
                    state: {{path: {tmp_path / "state.json"}}}
                    cluster:
                      node: startup-test
                      etcd: {{endpoints: ["{endpoint}"], prefix: /startup-test/}}
                      lease_ttl: 2s
                """,
                "example.test.yaml": ZONE,
                "regions/eu-west.yaml": region("192.0.2.10"),
            },
        )
        log = tmp_path / "serve.log"
        served = start_serve(zones, log=log)
        until(served, lambda s: s["cluster"]["connected"], "connected to etcd")
        etcd.kill(0)
        until(served, lambda s: not s["cluster"]["connected"], "etcd seen unreachable")
        etcd.revive(0)
        until(served, lambda s: s["cluster"]["connected"], "connected to etcd again")
        assert served.stop() == 0
    finally:
        if served is not None:
            served.stop()
        etcd.stop()
    lines = log_lines(log)
    text = "\n".join(lines)
    for expected in (
        "INFO gslb.runtime: serving 1 zone(s): example.test; 1 service(s), 1 region(s)",
        "INFO gslb.runtime: GeoIP: no database configured; every service answers in its "
        "region order",
        f"INFO gslb.runtime: API token from the file {token_file}",
        f"INFO gslb.runtime: cluster mode: node startup-test, etcd {endpoint}, "
        "prefix /startup-test/, health quorum majority",
    ):
        assert expected in lines, text
    connected = [line for line in lines if "connected to etcd" in line]
    assert len(connected) == 2 and all(line.startswith("INFO ") for line in connected), text
    assert any(
        line.startswith("ERROR gslb.cluster.store: cluster: etcd unreachable") for line in lines
    ), text
    assert TOKEN not in log.read_text()


def test_an_endpoint_coming_back_is_info_going_down_a_warning(tmp_path: Path) -> None:
    port = free_port(["127.0.0.1"])
    endpoint = HealthServer("127.0.0.1", port).start()
    served = None
    try:
        check = f"{{type: http, path: /health, port: {port}, interval: 0.1s, rise: 1, fall: 1}}"
        zones = write_config(
            tmp_path / "zones",
            {
                "gslb.yaml": f"state: {{path: {tmp_path / 'state.json'}}}\n",
                "example.test.yaml": ZONE,
                "regions/eu-west.yaml": region("127.0.0.1", check),
            },
        )
        log = tmp_path / "serve.log"
        served = start_serve(zones, log=log)

        def health(s: dict[str, Any]) -> str:
            return str(s["regions"][0]["endpoints"][0]["health"])

        until(served, lambda s: health(s) == "up", "first check")
        endpoint.status = 503
        until(served, lambda s: health(s) == "down", "endpoint down")
        endpoint.status = 200
        until(served, lambda s: health(s) == "up", "endpoint up again")
        assert served.stop() == 0
    finally:
        if served is not None:
            served.stop()
        endpoint.stop()
    lines = [line for line in log_lines(log) if "endpoint eu-west/127.0.0.1 is now" in line]
    assert lines == [
        "WARNING gslb.runtime: endpoint eu-west/127.0.0.1 is now DOWN (HTTP 503)",
        "INFO gslb.runtime: endpoint eu-west/127.0.0.1 is now up (HTTP 200)",
    ]


def test_without_a_database_or_token_source_the_lines_say_so() -> None:
    config = load_config(str(ROOT / "zones"))
    lines = startup_lines(config, NoGeo(), None, 4)
    assert "GeoIP: no database configured; every service answers in its region order" in lines
    assert not any(line.startswith("API token") for line in lines)
    assert lines[-1] == "DNS answered by 4 worker processes"
