"""`gslb ctl` against real `gslb serve` processes: the table, mutations with a reason,
several nodes side by side, the token from the environment or a file, exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gslb.ctl import region_cell
from tests.conftest import Served, copy_sample, gslb_ctl, start_serve

TOKEN = "ctl-test-token"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Served]]:
    servers = [
        start_serve(copy_sample(tmp_path_factory.mktemp(f"ctl{i}")), env={"GSLB_API_TOKEN": TOKEN})
        for i in range(2)
    ]
    yield servers
    for server in servers:
        server.stop()


def ctl(nodes: list[Served], *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    done = gslb_ctl(
        [n.api_port for n in nodes],
        *args,
        env={"GSLB_API_TOKEN": TOKEN, "USER": "alice", **(env or {})},
    )
    return done.returncode, done.stdout, done.stderr


def api_status(node: Served) -> dict[str, object]:
    code, out, _ = ctl([node], "--json", "status")
    assert code == 0
    return json.loads(out)[f"http://127.0.0.1:{node.api_port}"]  # type: ignore[no-any-return]


def test_status_is_a_table_of_regions(nodes: list[Served]) -> None:
    code, out, _ = ctl(nodes[:1], "status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["region", "state"]
    assert {line.split()[0] for line in lines[1:4]} == {"ap-southeast", "eu-west", "us-east"}
    assert "up, 4/4 endpoints usable" in out


def test_a_region_cell_shows_the_last_minute_share_before_since_start() -> None:
    region = {
        "state": "disabled",
        "usable": False,
        "endpoints": [{"usable": True}],
        "share": 0.375,
        "last_1m": {"answers": 0, "share": 0.0},
    }
    assert region_cell(region) == (
        "disabled, 1/1 endpoints usable, NOT SERVING, 0.0% last minute, 37.5% since start"
    )
    del region["last_1m"]  # a server from before the windows
    assert region_cell(region).endswith("NOT SERVING, 37.5%")


def test_a_region_and_an_endpoint_with_a_reason_on_both_nodes(nodes: list[Served]) -> None:
    code, out, _ = ctl(nodes, "disable", "eu-west", "--reason", "maintenance 1234")
    assert code == 0, out
    assert out.count("eu-west disabled") == 2  # one line per node
    code, out, _ = ctl(nodes, "endpoint", "disable", "us-east", "192.0.2.10", "--reason", "disk")
    assert code == 0 and out.count("us-east/192.0.2.10 disabled") == 2, out
    code, out, _ = ctl(nodes, "status")
    assert code == 0
    heading, *rows = out.splitlines()
    assert heading.split() == ["region", *(f"http://127.0.0.1:{n.api_port}" for n in nodes)]
    eu = next(row for row in rows if row.startswith("eu-west"))
    assert eu.count("disabled") == 2 and eu.count("NOT SERVING") == 2
    assert "us-east/192.0.2.10: health unchecked, admin disabled" in out
    for node in nodes:
        recent = api_status(node)["recent_actions"]
        assert isinstance(recent, list)
        eu = next(a for a in recent if a["target"] == "eu-west")
        assert eu["reason"] == "maintenance 1234" and str(eu["actor"]).startswith("alice@")
    for args in (("enable", "eu-west"), ("enable", "us-east", "192.0.2.10")):
        assert ctl(nodes, *args)[0] == 0
    assert "NOT SERVING" not in ctl(nodes, "status")[1]


def test_the_token_from_a_file_and_refusals(nodes: list[Served], tmp_path: Path) -> None:
    code, out, err = ctl(nodes[:1], "drain", "eu-west", env={"GSLB_API_TOKEN": ""})
    assert code == 1 and "401" in out and "no token" in err
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    code, out, _ = ctl(nodes[:1], "--token-file", str(token_file), "drain", "eu-west")
    assert code == 0 and "eu-west draining" in out
    assert ctl(nodes[:1], "enable", "eu-west")[0] == 0
    code, out, _ = ctl(nodes[:1], "disable", "nowhere")
    assert code == 1 and "404 no region 'nowhere'" in out


def test_explain_reload_cluster_and_an_unreachable_node(nodes: list[Served]) -> None:
    code, out, _ = ctl(nodes[:1], "explain", "www.gslb.example.com", "--client", "81.2.69.0")
    assert code == 0 and "client     81.2.69.0: GB/EU" in out
    code, out, _ = ctl(nodes, "reload")
    assert code == 0 and out.count("reloaded generation") == 2
    code, out, _ = ctl(nodes[:1], "cluster")
    assert code == 1 and "no cluster" in out  # alone: 404, said plainly
    gone = Served(nodes[0].process, 0, 1, nodes[0].config_dir)  # port 1: nothing listens
    code, out, _ = ctl([nodes[0], gone], "status")
    assert code == 1
    assert "region" in out and "http://127.0.0.1:1: unreachable cannot reach" in out
