"""Draining one endpoint: out of new answers, said to be draining (not disabled, not down),
kept across a restart; as the API, `gslb ctl` and the state file see it."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import dns.message
import dns.query

from gslb.persist import decode_admin, encode_admin
from gslb.state import AdminState
from tests.conftest import copy_sample, gslb_ctl, start_serve

TOKEN = "drain-token"


def test_the_state_file_keeps_draining_endpoints() -> None:
    admin = AdminState().with_endpoint("eu-west/198.51.100.10", "draining")
    assert admin.endpoint("eu-west/198.51.100.10") == "draining"
    assert "eu-west/198.51.100.10" in admin.off_endpoints
    again = decode_admin(json.loads(json.dumps(encode_admin(admin))))
    assert again == admin
    back = again.with_endpoint("eu-west/198.51.100.10", True)
    assert back.endpoint("eu-west/198.51.100.10") == "enabled" and not back.off_endpoints


def status(port: int | None) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/status", timeout=5) as response:
        return json.loads(response.read())


def endpoints_of(port: int | None, region: str) -> dict[str, Any]:
    found = next(r for r in status(port)["regions"] if r["name"] == region)
    return {e["address"]: e for e in found["endpoints"]} | {"": found}


def scrape(port: int | None) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def answers(port: int, name: str) -> set[str]:
    query = dns.message.make_query(name, "A")
    reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=2)
    return {rd.to_text() for rrset in reply.answer for rd in rrset}


def test_drain_an_endpoint_through_ctl_and_after_a_restart(tmp_path: Path) -> None:
    zones = copy_sample(tmp_path)
    server = start_serve(zones, env={"GSLB_API_TOKEN": TOKEN})

    def ctl(*args: str) -> str:
        done = gslb_ctl([server.api_port], *args, env={"GSLB_API_TOKEN": TOKEN})
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    try:
        # us-east serves clients without a location (loopback): 192.0.2.10 and .11
        assert answers(server.dns_port, "www.gslb.example.com") == {"192.0.2.10", "192.0.2.11"}
        out = ctl("endpoint", "drain", "us-east", "192.0.2.10", "--reason", "moving")
        assert "us-east/192.0.2.10 draining" in out
        assert answers(server.dns_port, "www.gslb.example.com") == {"192.0.2.11"}
        seen = endpoints_of(server.api_port, "us-east")
        assert seen["192.0.2.10"]["admin"] == "draining" and not seen["192.0.2.10"]["usable"]
        assert seen[""]["state"] == "up"  # the region serves on
        assert "us-east/192.0.2.10: health unchecked, admin draining" in ctl("status")
        # Every endpoint of ap-southeast drained or disabled: "draining", never "down" (the
        # GslbRegionDown alert reads gslb_region_state).
        for address in ("203.0.113.10", "203.0.113.11", "2001:db8:5::10"):
            ctl("endpoint", "drain", "ap-southeast", address)
        ctl("endpoint", "disable", "ap-southeast", "203.0.113.20")
        assert endpoints_of(server.api_port, "ap-southeast")[""]["state"] == "draining"
        metrics = scrape(server.api_port)
        assert 'gslb_region_state{region="ap-southeast",state="draining"} 1.0' in metrics
        assert 'gslb_region_state{region="ap-southeast",state="down"} 0.0' in metrics
        assert 'gslb_region_state{region="us-east",state="up"} 1.0' in metrics
        server.stop()
        server = start_serve(zones, env={"GSLB_API_TOKEN": TOKEN})  # from state.path
        assert endpoints_of(server.api_port, "us-east")["192.0.2.10"]["admin"] == "draining"
        assert answers(server.dns_port, "www.gslb.example.com") == {"192.0.2.11"}
        ctl("enable", "us-east", "192.0.2.10")
        assert answers(server.dns_port, "www.gslb.example.com") == {"192.0.2.10", "192.0.2.11"}
    finally:
        server.stop()
