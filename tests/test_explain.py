"""`gslb explain`: the CLI over the shipped zones/ and the demo database, and the trace
of drops and fail-open over a state with things taken out."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gslb.config import load_config
from gslb.explain import explain, format_text
from gslb.geo import GeoDatabase
from gslb.plan import compile_plan
from gslb.state import AdminState, State, View, endpoint_key
from tests.conftest import DEMO_DB, ROOT, copy_sample, write_config

EU_WEST = {"198.51.100.10", "198.51.100.11", "2001:db8:e::10"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_sample(tmp_path_factory.mktemp("zones"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gslb", "explain", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )


def run_json(sample: Path, *args: str) -> dict[str, Any]:
    done = run(*args, "--config", str(sample), "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def data(result: dict[str, Any]) -> set[str]:
    return {
        d for rrset in result["answer"] for d in rrset["data"] if rrset["type"] in ("A", "AAAA")
    }


def test_text_shows_location_candidates_ranking_and_pick(sample: Path) -> None:
    done = run("www.gslb.example.com", "--client", "81.2.69.142", "--config", str(sample))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    labels = [line.split()[0] for line in lines]
    text = done.stdout
    assert "81.2.69.142: GB/EU at 51.5142,-0.0931 (network 81.2.69.0/24)" in text
    for label in ("query", "client", "candidates", "ranking", "region", "pick", "rcode", "answer"):
        assert label in labels, (label, text)
    assert labels.index("candidates") < labels.index("ranking") < labels.index("pick")
    ranking = next(line for line in lines if line.startswith("ranking"))
    assert "1. eu-west (serves continent EU" in ranking
    assert ranking.index("eu-west") < ranking.index("us-east") < ranking.index("ap-southeast")
    answers = [line.split()[-1] for line in lines if line.startswith("answer")]
    assert answers and set(answers) <= EU_WEST
    assert "ecs" not in labels  # no ECS in a plain address


def test_json_parses_and_says_the_same(sample: Path) -> None:
    result = run_json(sample, "www.gslb.example.com", "--client", "81.2.69.142")
    assert result["query"] == {"name": "www.gslb.example.com.", "type": "A"}
    assert result["client"]["location"]["country"] == "GB"
    assert result["client"]["location"]["network"] == "81.2.69.0/24"
    assert result["client"]["ecs_source_prefix"] is None
    steps = [s["step"] for s in result["steps"]]
    assert steps[:4] == ["zone", "service", "candidates", "ranking"]
    assert "pick" in steps
    assert result["rcode"] == "NOERROR"
    assert result["region"] == "eu-west"
    assert result["fail_open"] is False
    assert data(result) and data(result) <= EU_WEST
    assert result["ecs_scope"] is None


@pytest.mark.parametrize(
    ("name", "client", "qtype", "region", "location", "scope"),
    [
        ("www", "81.2.69.0/24", "A", "eu-west", "GB", 24),
        ("www", "200.160.2.0/24", "A", "us-east", "BR", 20),  # db network /20
        ("www", "2001:4860::/32", "AAAA", "us-east", "US", 32),
        ("www", "2620:fe::/56", "AAAA", "eu-west", "CH", 48),
        ("www", "1.1.1.1/0", "A", "ap-southeast", "AU", 0),  # source 0: the resolver decides
        ("docs", "1.1.1.0/24", "A", "ap-southeast", "AU", 24),  # an alias of www
        ("api", "1.1.1.0/24", "A", "us-east", "AU", 0),  # failover: not the client's doing
        ("ns1", "1.1.1.0/24", "A", None, "AU", 0),  # static
    ],
)
def test_a_client_given_as_a_subnet_acts_as_ecs(
    sample: Path,
    name: str,
    client: str,
    qtype: str,
    region: str | None,
    location: str,
    scope: int,
) -> None:
    result = run_json(sample, f"{name}.gslb.example.com", "--client", client, "--type", qtype)
    assert result["client"]["ecs_source_prefix"] == int(client.split("/")[1])
    assert result["client"]["location"]["country"] == location
    assert result["region"] == region
    assert result["ecs_scope"] == scope
    assert data(result)


def test_text_of_an_ecs_client_shows_the_scope(sample: Path) -> None:
    done = run("www.gslb.example.com", "--client", "8.8.8.0/24", "--config", str(sample))
    assert done.returncode == 0
    assert "8.8.8.0 (ECS /24): US/NA" in done.stdout
    assert done.stdout.splitlines()[-1].split() == ["ecs", "scope", "/24"]


def test_unknown_client_gets_the_default_order(sample: Path) -> None:
    result = run_json(sample, "www.gslb.example.com", "--client", "10.1.2.3")
    assert result["client"]["location"] is None
    ranking = next(s["detail"] for s in result["steps"] if s["step"] == "ranking")
    assert "location unknown" in ranking
    assert result["region"] == "us-east"  # the first the zone lists


def test_bad_client_and_bad_config_fail_with_a_message(tmp_path: Path, sample: Path) -> None:
    bad = run("www.gslb.example.com", "--client", "not-an-ip", "--config", str(sample))
    assert bad.returncode == 2
    assert "not-an-ip" in bad.stderr
    write_config(tmp_path, {"z.yaml": "zone: z.test\nttl: nope\n"})
    broken = run("www.z.test", "--client", "8.8.8.8", "--config", str(tmp_path))
    assert broken.returncode == 1
    assert "z.yaml:2:" in broken.stdout + broken.stderr


def test_trace_says_why_each_region_was_dropped_or_kept() -> None:
    config = load_config(str(ROOT / "zones"))
    admin = AdminState().with_region("eu-west", "draining")
    st = State(down=frozenset({endpoint_key("us-east", "192.0.2.10")}), admin=admin)
    with GeoDatabase(str(DEMO_DB)) as db:
        result = explain(
            View(compile_plan(config), st),
            db,
            "www.gslb.example.com",
            "81.2.69.0/24",
            "A",
            random.Random(1),
        )
    details = [(s["step"], s["detail"]) for s in result["steps"]]
    assert ("drop", "eu-west: draining by an operator") in details
    assert ("region", "us-east: chosen, 1 usable endpoint(s); skipping down: 192.0.2.10") in details
    assert ("keep", "ap-southeast: usable, 2 endpoint(s), ranked lower") in details
    assert result["region"] == "us-east"
    assert data(result) == {"192.0.2.11"}
    assert result["ecs_scope"] == 24
    text = format_text(result)
    assert "drop       eu-west: draining by an operator" in text


def test_trace_shows_fail_open() -> None:
    config = load_config(str(ROOT / "zones"))
    plan = compile_plan(config)
    every = frozenset(
        e.key for entry in plan.services["www.gslb.example.com."].regions for e in entry.v4
    )
    result = explain(
        View(plan, State(down=every)),
        None,
        "www.gslb.example.com.",
        "8.8.8.8",
        "A",
        random.Random(1),
    )
    assert result["fail_open"] is True
    assert result["client"]["geoip"] == "no database"
    steps = [s["step"] for s in result["steps"]]
    assert steps.count("drop") == 3
    assert "fail-open" in steps
    assert result["region"] == "us-east" and data(result)


def test_offline_explain_reads_the_saved_admin_state(tmp_path: Path) -> None:
    from gslb.persist import StateFile

    directory = copy_sample(tmp_path / "zones")
    config = load_config(str(directory))
    StateFile(config.settings.state_path).save(AdminState().with_region("eu-west", "disabled"))
    result = run_json(directory, "www.gslb.example.com", "--client", "81.2.69.142")
    assert result["region"] == "us-east"
    assert any("eu-west: disabled by an operator" in s["detail"] for s in result["steps"])


def test_a_seed_repeats_the_random_draws_offline_only(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gslb import cli

    argv = ["www.gslb.example.com", "--client", "81.2.69.0/24", "--config", str(sample)]
    picks = set()
    for seed in ("1", "1", "2", "3", "4", "5", "6", "7"):
        assert cli.main(["explain", *argv, "--seed", seed]) == 0
        out = capsys.readouterr().out
        picks.add((seed, next(line for line in out.splitlines() if line.startswith("pick"))))
    assert len({pick for seed, pick in picks if seed == "1"}) == 1  # the same seed, the same draw
    assert len({pick for _, pick in picks}) == 2  # select weighted, 2 of 2: both orders occur
    assert cli.main(["explain", *argv, "--seed", "1", "--api", "http://127.0.0.1:9"]) == 2
    assert "--seed is for offline explain" in capsys.readouterr().err
