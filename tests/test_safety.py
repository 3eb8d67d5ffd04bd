"""Safety rules and the dry run: the pure part (gslb/safety.py) on the sample plan, then
a real `gslb serve` refusing, forcing and previewing changes over its API and `gslb ctl`."""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.edns
import dns.message
import dns.query
import pytest

from gslb.config import load_config
from gslb.geo import open_geo
from gslb.plan import compile_plan
from gslb.safety import dry_run, serving_regions, shortfalls
from gslb.select.client import locate
from gslb.state import AdminState, State
from tests.conftest import DEMO_DB, Served, copy_sample, gslb_ctl, start_serve

TOKEN = "safety-token"
EUROPE, AMERICA, ASIA = "81.2.69.0", "8.8.8.0", "1.1.1.0"  # placed by the demo database


def sample_plan(tmp_path: Path) -> Any:
    return compile_plan(load_config(str(copy_sample(tmp_path))))


def test_shortfalls_only_for_changes_that_make_things_worse(tmp_path: Path) -> None:
    plan = sample_plan(tmp_path)
    now = State()
    assert serving_regions(plan, now)["www.gslb.example.com IPv4"] == 3
    one_out = now.with_admin(AdminState().with_region("eu-west", "disabled"))
    two_out = one_out.with_admin(one_out.admin.with_region("us-east", "disabled"))
    assert shortfalls(plan, now, one_out, 2) == []
    short = shortfalls(plan, one_out, two_out, 2)
    assert {s.service for s in short} >= {"www.gslb.example.com IPv4", "www.gslb.example.com IPv6"}
    assert all(s.after == 1 and s.before == 2 for s in short)
    assert shortfalls(plan, one_out, two_out, 0) == []  # no rule
    # Already below the rule (health, or a forced change): what does not make it worse passes.
    assert shortfalls(plan, two_out, two_out, 3) == []
    assert shortfalls(plan, two_out, one_out, 3) == []  # enabling never is refused


def test_dry_run_says_where_the_clients_of_a_region_go(tmp_path: Path) -> None:
    plan = sample_plan(tmp_path)
    geo = open_geo(str(DEMO_DB))
    try:
        clients = [
            locate(ipaddress.ip_address(a), 24, geo) for a in (EUROPE, EUROPE, AMERICA, ASIA)
        ]
    finally:
        geo.close()
    before = State()
    after = before.with_admin(AdminState().with_region("eu-west", "disabled"))
    moved = {(s["service"], s["family"]): s for s in dry_run(plan, before, after, clients)}
    www = moved[("www.gslb.example.com", "IPv4")]
    assert www["clients"] == 4
    assert www["before"]["eu-west"] == 0.5 and "eu-west" not in www["after"]
    assert sum(www["after"].values()) == pytest.approx(1.0)
    assert sum(www["moved"].values()) == 2 and all(
        m.startswith("eu-west -> ") for m in www["moved"]
    )
    assert dry_run(plan, before, before, clients) == []  # nothing moves, nothing listed


# --- a real server ----------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    zones = copy_sample(tmp_path)
    settings = zones / "gslb.yaml"
    settings.write_text(settings.read_text() + "safety: {min_serving_regions: 2}\n")
    server = start_serve(zones, env={"GSLB_API_TOKEN": TOKEN})
    yield server
    server.stop()


def api(server: Served, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.api_port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "X-Gslb-Actor": "alice"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def answer(server: Served, subnet: str) -> str:
    ecs = dns.edns.ECSOption(subnet, 24)
    query = dns.message.make_query("www.gslb.example.com", "A", use_edns=0, options=[ecs])
    reply = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)
    return str(reply.answer[0][0])


def test_a_change_below_the_rule_is_refused_unless_forced(served: Served) -> None:
    assert api(served, "POST", "/v1/regions/eu-west/disable")[0] == 200  # 3 -> 2: allowed
    status, body = api(served, "POST", "/v1/regions/us-east/disable", {"reason": "x"})
    assert status == 409
    assert body["rule"] == "min_serving_regions"
    assert "www.gslb.example.com IPv4 would have 1 serving region(s)" in body["error"]
    assert api(served, "GET", "/v1/status")[1]["regions"][2]["admin"] == "enabled"  # unchanged
    status, body = api(
        served, "POST", "/v1/regions/us-east/disable", {"reason": "x", "force": True}
    )
    assert status == 200
    assert body["audit"]["action"].startswith("region disabled (forced past: ")
    # Endpoints are under the same rule; enabling is never refused.
    assert api(served, "POST", "/v1/regions/us-east/enable")[0] == 200
    status, _ = api(served, "POST", "/v1/regions/ap-southeast/endpoints/203.0.113.10/disable")
    assert status == 200  # ap-southeast keeps 203.0.113.11
    assert api(served, "POST", "/v1/regions/eu-west/disable", {"force": "yes"})[0] == 400


def test_dry_run_changes_nothing_and_says_where_clients_go(served: Served) -> None:
    for subnet in (EUROPE, AMERICA, ASIA):
        answer(served, subnet)  # recent clients: one network of each
    status, body = api(served, "POST", "/v1/regions/eu-west/disable?dry_run=true")
    assert status == 200 and body["dry_run"] is True and body["clients"] == 3
    www = next(s for s in body["services"] if s["service"] == "www.gslb.example.com")
    assert www["before"]["eu-west"] == pytest.approx(1 / 3, abs=0.001)
    assert "eu-west" not in www["after"] and list(www["moved"]) == ["eu-west -> us-east"]
    assert answer(served, EUROPE).startswith("198.51.100.")  # still eu-west: nothing changed
    _, now = api(served, "GET", "/v1/status")
    assert all(r["admin"] == "enabled" for r in now["regions"])
    assert not any(a["target"] == "eu-west" for a in now["recent_actions"])
    # A dry run past the rule says so instead of refusing.
    assert api(served, "POST", "/v1/regions/eu-west/disable")[0] == 200
    status, body = api(served, "POST", "/v1/regions/us-east/disable?dry_run=true")
    assert status == 200 and body["safety"] and "would have 1 serving region" in body["safety"][0]
    assert api(served, "POST", "/v1/regions/us-east/disable?dry_run=maybe")[0] == 400


def test_reload_dry_run_only_checks(served: Served) -> None:
    zone = served.config_dir / "gslb.example.com.yaml"
    good = zone.read_text()
    zone.write_text(good.replace("ttl: 300", "ttl: soon", 1))
    status, body = api(served, "POST", "/v1/reload?dry_run=true")
    assert status == 422 and body == {  # as a reload that is refused, and nothing changed
        "ok": False,
        "dry_run": True,
        "generation": 1,
        "errors": body["errors"],
    }
    assert body["errors"] and "gslb.example.com.yaml" in body["errors"][0]
    zone.write_text(good)
    assert api(served, "POST", "/v1/reload?dry_run=true")[1]["ok"] is True
    assert api(served, "GET", "/v1/status")[1]["generation"] == 1  # nothing was loaded


def test_ctl_dry_run_and_force(served: Served) -> None:
    def ctl(*args: str) -> tuple[int, str]:
        done = gslb_ctl([served.api_port], *args, env={"GSLB_API_TOKEN": TOKEN})
        return done.returncode, done.stdout

    answer(served, EUROPE)
    code, out = ctl("disable", "eu-west", "--dry-run")
    assert code == 0 and "dry run: eu-west disabled would change:" in out
    assert "moved:  eu-west -> us-east: 1" in out
    assert ctl("disable", "eu-west")[0] == 0
    code, out = ctl("disable", "us-east")
    assert code == 1 and "409 refused by the safety rule min_serving_regions" in out
    code, out = ctl("disable", "us-east", "--dry-run")
    assert code == 0 and "would need --force: www.gslb.example.com IPv4" in out
    code, out = ctl("disable", "us-east", "--force", "--reason", "both down anyway")
    assert code == 0 and "us-east disabled" in out
    code, out = ctl("reload", "--dry-run")
    assert code == 0 and "dry run: the config would load" in out
