"""The status page at `/`, rendered by headless Chromium against a real `gslb serve`.

The page is loaded with `--dump-dom` after its scripts ran (virtual time lets
the 2 s refresh and the fetches finish); the DOM then shows the regions, their
state, the fail-open banner and the admin actions. Skipped without Chromium
(Debian package `chromium`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import dns.edns
import dns.message
import dns.query
import pytest

from tests.conftest import DEMO_DB, Served, copy_sample, start_serve, write_config
from tests.helpers_http import HealthServer, free_port
from tests.runtime_inprocess import FakeClock, running

STATIC = Path(__file__).resolve().parent.parent / "gslb" / "api" / "static"
TOKEN = "status-page-test-token"
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
REGIONS = {"ap-southeast", "eu-west", "us-east"}


class Dom(HTMLParser):
    """The elements that carry data-* attributes, and the page's visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.tagged: list[dict[str, str]] = []
        self.text: list[str] = []
        self.hidden_ids: set[str] = set()
        self.land = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if "hidden" in found and "id" in found:
            self.hidden_ids.add(found["id"])
        if tag == "polygon" and found.get("class") == "land":
            self.land += 1
        if "data-region" in found:
            self.tagged.append({"tag": tag, **found})

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def states(self, tag: str, css_class: str) -> dict[str, str]:
        return {
            t["data-region"]: t["data-state"]
            for t in self.tagged
            if t["tag"] == tag and t.get("class") == css_class
        }

    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def dump_dom(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran (virtual time: the refresh and fetches finish)."""
    assert CHROMIUM is not None
    run = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=3000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def render(url: str, profile: Path) -> Dom:
    dom = Dom()
    dom.feed(dump_dom(url, profile))
    return dom


def post(served: Served, path: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{served.api_port}{path}",
        method="POST",
        data=json.dumps({"reason": "<script>alert(1)</script> test"}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        result: dict[str, object] = json.loads(response.read())
        return result


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = copy_sample(tmp_path_factory.mktemp("zones"))
    server = start_serve(directory, env={"GSLB_API_TOKEN": TOKEN})
    yield server
    server.stop()


def test_page_uses_nothing_from_outside() -> None:
    for name in ("index.html", "app.js", "style.css"):
        text = (STATIC / name).read_text()
        urls = set(re.findall(r"https?://[^\s\"'<>)]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, (name, urls)
    world = json.loads((STATIC / "world.json").read_text())
    assert len(world["land"]) >= 10
    for shape in world["land"]:
        ring = shape["ring"]
        assert ring[0] == ring[-1] and len(ring) >= 4, shape["name"]
        assert all(-180 <= lon <= 180 and -90 <= lat <= 90 for lon, lat in ring), shape["name"]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium)")
def test_page_shows_regions_then_a_disabled_region(served: Served, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{served.api_port}/"
    dom = render(url, tmp_path / "profile1")
    assert dom.states("tr", "region") == dict.fromkeys(REGIONS, "up")
    assert dom.states("g", "marker") == dict.fromkeys(REGIONS, "up")
    assert dom.land >= 10  # the world outline came from the package, offline
    assert "fail-open" in dom.hidden_ids
    assert "none yet" in dom.all_text()

    assert post(served, "/v1/regions/eu-west/disable")["admin"] == "disabled"
    try:
        dom = render(url, tmp_path / "profile2")
    finally:
        post(served, "/v1/regions/eu-west/enable")
    assert dom.states("tr", "region") == {**dict.fromkeys(REGIONS, "up"), "eu-west": "disabled"}
    assert dom.states("g", "marker")["eu-west"] == "disabled"
    text = dom.all_text()
    assert "region disabled eu-west" in text
    assert "<script>alert(1)</script> test" in text  # shown as text, never as markup


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium)")
def test_page_shows_fail_open(served: Served, tmp_path: Path) -> None:
    for region in sorted(REGIONS):
        post(served, f"/v1/regions/{region}/disable")
    try:
        dom = render(f"http://127.0.0.1:{served.api_port}/", tmp_path / "profile")
    finally:
        for region in sorted(REGIONS):
            post(served, f"/v1/regions/{region}/enable")
    assert "fail-open" not in dom.hidden_ids
    text = dom.all_text()
    assert "Fail-open: no usable region for" in text and "www.gslb.example.com IPv4" in text
    assert set(dom.states("tr", "region").values()) == {"disabled"}


# Three regions health-checked over HTTP: eu-west keeps one of its two endpoints (the other
# is disabled by an operator), us-east has nothing listening (measured down), and every
# endpoint of ap-southeast is disabled by an operator.
MIXED = {
    "eu-west": (["127.0.2.1", "127.0.2.2"], "lat: 53.3, lon: -6.3", "continents: [EU, AF]"),
    "us-east": (["127.0.1.1"], "lat: 39.0, lon: -77.5", "continents: [NA, SA]"),
    "ap-southeast": (["127.0.3.1", "127.0.3.2"], "lat: 1.35, lon: 103.8", "continents: [AS, OC]"),
}
LISTENING = ["127.0.2.1", "127.0.2.2", "127.0.3.1", "127.0.3.2"]
DISABLED = [("eu-west", "127.0.2.1"), ("ap-southeast", "127.0.3.1"), ("ap-southeast", "127.0.3.2")]


def mixed_config(directory: Path, port: int) -> Path:
    files = {
        "gslb.yaml": f"""
            geoip: {{database: {DEMO_DB}}}
            state: {{path: {directory / "state.json"}}}
            api: {{token_env: GSLB_API_TOKEN}}
        """,
        "gslb.example.com.yaml": """
            zone: gslb.example.com
            soa: {mname: ns1.gslb.example.com, rname: hostmaster.example.com}
            ns: [ns1.gslb.example.com]
            records:
              ns1: {A: [192.0.2.53]}
            services:
              www: {ttl: 5, policy: geo, select: all, answers: 4,
                    regions: [eu-west, us-east, ap-southeast]}
        """,
    }
    for name, (addresses, location, serves) in MIXED.items():
        endpoints = "\n".join(f"    - {a}" for a in addresses)
        files[f"regions/{name}.yaml"] = (
            f"region: {name}\nlocation: {{{location}}}\nserves: {{{serves}}}\n"
            f"health: {{type: http, path: /health, port: {port}, interval: 1s, timeout: 0.5s}}\n"
            f"services:\n  www.gslb.example.com:\n{endpoints}\n"
        )
    return write_config(directory, files)


def regions_now(served: Served) -> dict[str, dict[str, Any]]:
    """The regions of `/v1/status`, by name."""
    url = f"http://127.0.0.1:{served.api_port}/v1/status"
    with urllib.request.urlopen(url, timeout=5) as response:
        return {r["name"]: r for r in json.loads(response.read())["regions"]}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    all_addresses = [a for addresses, _, _ in MIXED.values() for a in addresses]
    port = free_port(all_addresses)
    endpoints = [HealthServer(a, port).start() for a in LISTENING]
    server = start_serve(
        mixed_config(tmp_path_factory.mktemp("mixed"), port), env={"GSLB_API_TOKEN": TOKEN}
    )
    try:
        deadline = time.monotonic() + 5
        while any(  # until every endpoint has its first health result
            e["health"] == "pending" for r in regions_now(server).values() for e in r["endpoints"]
        ):
            assert time.monotonic() < deadline, "health checks did not report within 5 s"
            time.sleep(0.05)
        for region, address in DISABLED:
            path = f"/v1/regions/{region}/endpoints/{address}/disable"
            assert post(server, path)["admin"] == "disabled"
        yield server
    finally:
        server.stop()
        for endpoint in endpoints:
            endpoint.stop()


def test_status_tells_disabled_endpoints_from_a_down_region(mixed: Served) -> None:
    regions = regions_now(mixed)
    assert {name: r["state"] for name, r in regions.items()} == {
        "eu-west": "up",  # one endpoint disabled, the other healthy: it serves
        "us-east": "down",  # its only endpoint fails its check
        "ap-southeast": "disabled",  # every endpoint disabled: drained, not down
    }
    assert [r["usable"] for r in regions.values()] == [False, True, False]  # sorted by name
    eu = {e["address"]: e for e in regions["eu-west"]["endpoints"]}
    assert eu["127.0.2.1"]["admin"] == "disabled" and eu["127.0.2.1"]["health"] == "up"
    assert eu["127.0.2.2"]["usable"]
    # eu-west really serves European clients, with the endpoint left enabled
    query = dns.message.make_query(
        "www.gslb.example.com", "A", use_edns=0, options=[dns.edns.ECSOption("81.2.69.0", 24)]
    )
    reply = dns.query.udp(query, "127.0.0.1", port=mixed.dns_port, timeout=2)
    assert {rd.address for rrset in reply.answer for rd in rrset} == {"127.0.2.2"}


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium)")
def test_page_tells_disabled_endpoints_from_a_down_region(mixed: Served, tmp_path: Path) -> None:
    dom = render(f"http://127.0.0.1:{mixed.api_port}/", tmp_path / "profile")
    expected = {"eu-west": "up", "us-east": "down", "ap-southeast": "disabled"}
    assert dom.states("tr", "region") == expected
    assert dom.states("g", "marker") == expected
    endpoints = {
        t["data-endpoint"]: t["data-state"]
        for t in dom.tagged
        if t["tag"] == "tr" and t.get("class") == "endpoint"
    }
    assert endpoints == {
        "127.0.2.1": "disabled",
        "127.0.2.2": "up",
        "127.0.1.1": "down",
        "127.0.3.1": "disabled",
        "127.0.3.2": "disabled",
    }
    text = dom.all_text()
    assert "1/2 endpoints usable, 1 disabled" in text
    assert "0/2 endpoints usable, 2 disabled" in text
    assert "down: no enabled endpoint is healthy" in text


class Cells(HTMLParser):
    """The text of each table cell and map label, by the row's (class, service, region)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[str, str, str], dict[str, str]] = {}
        self.row: tuple[str, str, str] | None = None
        self.cell: str | None = None
        self.labels: dict[str, str] = {}
        self.marker: str | None = None
        self.in_label = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "tr":
            self.row = (
                found.get("class", ""),
                found.get("data-service", ""),
                found.get("data-region", ""),
            )
            self.rows[self.row] = {}
        elif tag == "td" and self.row is not None:
            words = found.get("class", "").split()
            self.cell = words[1] if words[:1] == ["share"] else (words[0] if words else None)
            if self.cell is not None:
                self.rows[self.row][self.cell] = ""
        elif tag == "g" and found.get("class") == "marker":
            self.marker = found["data-region"]
        elif tag == "text" and self.marker is not None:
            self.in_label = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self.cell = None
        elif tag == "tr":
            self.row = None
        elif tag == "text":
            self.in_label = False
        elif tag == "g":
            self.marker = None

    def handle_data(self, data: str) -> None:
        if self.row is not None and self.cell is not None:
            self.rows[self.row][self.cell] += data
        if self.in_label and self.marker is not None:
            self.labels[self.marker] = self.labels.get(self.marker, "") + data


def render_cells(url: str, profile: Path) -> tuple[Cells, str]:
    html = dump_dom(url, profile)
    cells = Cells()
    cells.feed(html)
    dom = Dom()
    dom.feed(html)
    return cells, dom.all_text()


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium)")
def test_page_shows_the_last_minute_share_after_a_failover(tmp_path: Path) -> None:
    """A fake clock moves the window past eu-west's answers: the map and the tables show
    its last-minute share at 0 while since start keeps it."""
    clock = FakeClock()
    europe = "81.2.69.0"
    directory = copy_sample(tmp_path / "zones")
    with running(directory, clock=clock, environ={"GSLB_API_TOKEN": TOKEN}) as node:
        for _ in range(10):
            node.ask("www.gslb.example.com", europe)
        node.status()  # the windows take the answers in now (the sampler does every second)
        clock.advance(30)
        node.post("/v1/regions/eu-west/disable")
        for _ in range(10):
            node.ask("www.gslb.example.com", europe)
        node.ask("api.gslb.example.com", europe)
        node.status()
        clock.advance(31)
        cells, text = render_cells(f"{node.api}/", tmp_path / "profile")
    eu = cells.rows[("region", "", "eu-west")]
    assert (eu["last_1m"], eu["last_5m"], eu["since_start"]) == (
        "0.0% (0)",
        "47.6% (10)",
        "47.6% (10)",
    )
    us = cells.rows[("region", "", "us-east")]
    assert (us["last_1m"], us["since_start"]) == ("100.0% (11)", "52.4% (11)")
    assert cells.labels["eu-west"] == "eu-west 0.0%"  # the map: the last minute's share
    assert cells.labels["us-east"] == "us-east 100.0%"
    assert cells.rows[("region", "", "ap-southeast")]["last_1m"] == "0.0% (0)"
    www_eu = cells.rows[("service-region", "www.gslb.example.com", "eu-west")]
    assert (www_eu["last_1m"], www_eu["last_5m"], www_eu["since_start"]) == (
        "0.0% (0)",
        "50.0% (10)",
        "50.0% (10)",
    )
    api = cells.rows[("service", "api.gslb.example.com", "")]
    assert (api["last_1m"], api["since_start"]) == ("1 answer", "1 answer")
    api_us = cells.rows[("service-region", "api.gslb.example.com", "us-east")]
    assert api_us["last_1m"] == "100.0% (1)"
    assert "last minute: 11 answers" in text
    assert "last 5 minutes: 21 answers (the server started 61 s ago)" in text
