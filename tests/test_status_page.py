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
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import Served, copy_sample, start_serve

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


def render(url: str, profile: Path) -> Dom:
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
    dom = Dom()
    dom.feed(run.stdout)
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
    assert "Fail-open: no usable region for" in text and "www.gslb.example.com. IPv4" in text
    assert set(dom.states("tr", "region").values()) == {"disabled"}
