"""Several `gslb serve` nodes sharing admin state and health verdicts through a real etcd."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gslb.cluster.records import NodeRecord
from gslb.cluster.store import ClusterStore
from gslb.model import ClusterSettings
from gslb.state import AdminState
from tests.cluster_harness import (
    REGIONS,
    EtcdCluster,
    Node,
    etcd,
    is_eu,
    is_us,
    metric,
    node_files,
    stop_all,
    wait_until,
)
from tests.helpers_http import HealthServer, free_port
from tests.test_status_page import CHROMIUM, render

__all__ = ["etcd"]  # the module-scoped fixture
_prefixes = itertools.count()
MakeNodes = Callable[..., list[Node]]


@pytest.fixture
def health_port() -> Iterator[tuple[int, dict[str, HealthServer]]]:
    addresses = [a for addrs, _, _ in REGIONS.values() for a in addrs]
    port = free_port(addresses)
    servers = {a: HealthServer(a, port).start() for a in addresses}
    yield port, servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def make_nodes(
    etcd: EtcdCluster, tmp_path: Path, health_port: tuple[int, dict[str, HealthServer]]
) -> Iterator[MakeNodes]:
    started: list[Node] = []
    prefix = f"/gslb-test-{next(_prefixes)}-{tmp_path.name}/"

    def make(count: int, eu_ports: dict[int, int] | None = None, **options: str) -> list[Node]:
        nodes = []
        for i in range(count):
            name = f"ns{i + 1}"
            files = node_files(
                name,
                etcd.endpoints,
                prefix,
                tmp_path / name / "state.json",
                health_port[0],
                eu_port=(eu_ports or {}).get(i),
                **options,
            )
            nodes.append(Node(tmp_path / name / "zones", files))
        started.extend(nodes)
        names = {f"ns{i + 1}" for i in range(count)}
        for node in nodes:
            wait_until(lambda n=node: n.alive_nodes() >= names, 10, "every node registered")  # type: ignore[misc]
        return nodes

    yield make
    stop_all(started)


def test_a_change_on_one_node_is_in_every_nodes_answers(make_nodes: MakeNodes) -> None:
    a, b, c = make_nodes(3)
    for node in (a, b, c):
        wait_until(lambda n=node: is_eu(n.answer()), 5, "eu-west answered first")  # type: ignore[misc]
    status, body = a.api("POST", "/v1/regions/eu-west/disable", {"reason": "test"})
    assert status == 200, body
    assert body["revision"] > 0
    committed = time.monotonic()
    for node in (a, b, c):
        wait_until(lambda n=node: is_us(n.answer()), 1.0, "eu-west out of every answer")  # type: ignore[misc]
    assert time.monotonic() - committed < 1.0
    # Every node shows the same audit entry, with the node that took the call.
    for node in (b, c):
        _, status_body = node.api("GET", "/v1/status")
        actions = status_body["recent_actions"]
        assert actions[0]["action"] == "region disabled" and actions[0]["node"] == "ns1"
    view = c.cluster()
    assert view["etcd"]["connected"] is True and view["etcd"]["revision"] >= body["revision"]
    assert [n["name"] for n in view["nodes"]] == ["ns1", "ns2", "ns3"]
    assert all(n["alive"] and not n["config_differs"] for n in view["nodes"])
    histogram_count = metric(b, "gslb_cluster_propagation_seconds_count")
    assert histogram_count is not None and histogram_count >= 1
    assert metric(b, 'gslb_cluster_nodes{state="alive"}') == 3.0


def test_simultaneous_changes_on_two_nodes_both_survive(make_nodes: MakeNodes) -> None:
    a, b = make_nodes(2)
    rounds = [
        ("/v1/regions/eu-west/drain", "/v1/regions/us-east/endpoints/127.0.1.1/disable"),
        ("/v1/regions/us-east/endpoints/127.0.1.2/disable", "/v1/regions/eu-west/disable"),
        ("/v1/regions/eu-west/endpoints/127.0.2.1/disable", "/v1/regions/us-east/drain"),
    ]
    results: dict[str, tuple[int, object]] = {}
    for first, second in rounds:
        barrier = threading.Barrier(2)

        def call(node: Node, path: str, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            results[path] = node.api("POST", path)

        threads = [
            threading.Thread(target=call, args=(a, first)),
            threading.Thread(target=call, args=(b, second)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert all(status == 200 for status, _ in results.values()), results
    revisions = [body["revision"] for _, body in results.values()]  # type: ignore[index]
    assert len(set(revisions)) == len(revisions)  # six distinct commits, none lost
    for node in (a, b):

        def final(n: Node = node) -> bool:
            _, body = n.api("GET", "/v1/status")
            regions = {r["name"]: r for r in body["regions"]}
            disabled = {
                f"{r['name']}/{e['address']}"
                for r in body["regions"]
                for e in r["endpoints"]
                if e["admin"] == "disabled"
            }
            return (
                regions["eu-west"]["admin"] == "disabled"
                and regions["us-east"]["admin"] == "draining"
                and disabled == {"us-east/127.0.1.1", "us-east/127.0.1.2", "eu-west/127.0.2.1"}
            )

        wait_until(final, 2, "every change on both nodes")


def test_one_etcd_member_killed_everything_works(etcd: EtcdCluster, make_nodes: MakeNodes) -> None:
    a, b = make_nodes(2)
    etcd.kill(0)
    try:
        status, body = a.api("POST", "/v1/regions/eu-west/disable")
        assert status == 200, body
        wait_until(lambda: is_us(b.answer()), 2, "the change reached the other node")
        assert a.connected() and b.connected()
    finally:
        etcd.revive(0)
        wait_until(lambda: etcd.healthy(etcd.members[0]), 20, "member back")


def test_quorum_lost_then_back(etcd: EtcdCluster, make_nodes: MakeNodes, tmp_path: Path) -> None:
    a, b = make_nodes(2)
    status, _ = a.api("POST", "/v1/regions/eu-west/disable")
    assert status == 200
    wait_until(lambda: is_us(b.answer()), 2, "disable seen on b")
    etcd.kill(1)
    etcd.kill(2)
    try:
        wait_until(lambda: not a.connected(), 10, "a notices the lost quorum")
        view = a.cluster()
        assert view["etcd"]["since"] > 0 and view["etcd"]["problem"]
        assert is_us(a.answer())  # DNS goes on from the last state
        status, body = a.api("POST", "/v1/regions/eu-west/enable")
        assert status == 503 and "etcd" in body["error"], body
        assert is_us(a.answer())  # and no silent local change
        _, status_body = a.api("GET", "/v1/status")
        assert status_body["cluster"]["connected"] is False
        assert metric(a, "gslb_cluster_connected") == 0.0
        if CHROMIUM is not None:  # the status page's cluster panel says so too
            page = render(f"http://127.0.0.1:{a.served.api_port}/", tmp_path / "chromium")
            assert "cluster" not in page.hidden_ids
            assert "node ns1: etcd DISCONNECTED since" in page.all_text()
            assert "ns2 alive" in page.all_text() or "ns2 gone" in page.all_text()
        # A node (re)started while etcd is down answers from its last state (state.path).
        b.stop()
        b.start()
        assert is_us(b.answer())
        assert b.region_admin()["eu-west"] == "disabled"
    finally:
        etcd.revive(1)
        etcd.revive(2)
    wait_until(lambda: a.connected() and b.connected(), 20, "both reconnect")
    status, body = b.api("POST", "/v1/regions/eu-west/enable")
    assert status == 200, body
    for node in (a, b):
        wait_until(lambda n=node: is_eu(n.answer()), 2, "both caught up")  # type: ignore[misc]
    assert metric(a, "gslb_cluster_connected") == 1.0


def test_health_consensus_and_a_killed_node_leaving(
    make_nodes: MakeNodes, health_port: tuple[int, dict[str, HealthServer]]
) -> None:
    dead_port = free_port(["127.0.2.1", "127.0.2.2"])  # nothing listens: ns1 alone sees eu down
    a, b, c = make_nodes(3, eu_ports={0: dead_port})

    def split_reported() -> bool:
        _, body = a.api("GET", "/v1/status")
        texts = {d["endpoint"]: d["text"] for d in body["cluster"]["disagreements"]}
        return texts.get("eu-west/127.0.2.1") == "down here, up on 2 of 3 nodes"

    wait_until(split_reported, 5, "ns1 reports its lone view")
    _, explained = a.api("GET", "/v1/explain?name=www.gslb.example.com&client=81.2.69.0")
    texts = [d["text"] for d in explained["cluster"]["disagreements"]]
    assert texts == ["down here, up on 2 of 3 nodes"] * 2
    # `gslb explain --api` says so too (the offline explain cannot know it).
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "gslb",
            "explain",
            "www.gslb.example.com",
            "--client",
            "81.2.69.0",
            "--api",
            f"http://127.0.0.1:{a.served.api_port}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert "cluster    health as 3 live node(s) decided (health_quorum: majority)" in printed
    assert "cluster    eu-west/127.0.2.1: down here, up on 2 of 3 nodes" in printed, printed
    for node in (a, b, c):
        assert is_eu(node.answer())  # one node's failing checks do not fail eu-west over
    # ns1's config differs (its check port): the cluster view flags it.
    flagged = {n["name"] for n in b.cluster()["nodes"] if n["config_differs"]}
    assert flagged == {"ns1"}
    # Now eu-west really fails: a majority sees it down, and every node fails it over.
    for address in REGIONS["eu-west"][0]:
        health_port[1][address].stop()
    for node in (a, b, c):
        wait_until(lambda n=node: is_us(n.answer()), 5, "eu-west failed over everywhere")  # type: ignore[misc]
    # A node killed with kill -9 leaves the live set when its lease (2 s) expires.
    killed = time.monotonic()
    c.kill9()
    wait_until(lambda: "ns3" not in a.alive_nodes(), 6, "ns3 leaves the live set", step=0.1)
    gone_after = time.monotonic() - killed
    assert gone_after < 4.5, gone_after


async def _wait(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.1f}s: {what}")
        await asyncio.sleep(0.02)


def _store(etcd: EtcdCluster, prefix: str, name: str) -> ClusterStore:
    settings = ClusterSettings(
        node=name, etcd_endpoints=tuple(etcd.endpoints), prefix=prefix, lease_ttl=2.0
    )
    record = NodeRecord(name, 1, "digest", time.time())
    return ClusterStore(settings, AdminState(), record, lambda: None)


@pytest.mark.parametrize("compact", [False, True], ids=["resume", "compacted"])
async def test_a_store_back_from_an_outage_resumes_or_reloads(
    etcd: EtcdCluster, compact: bool
) -> None:
    """Back after missing changes, a node resumes its watch from its last revision, or, when
    etcd compacted that history away, reloads everything under the prefix."""
    prefix = f"/gslb-store-{next(_prefixes)}/"
    writer, reader = _store(etcd, prefix, "w"), _store(etcd, prefix, "r")
    await writer.start()
    await reader.start()
    try:
        await _wait(lambda: writer.connected and reader.connected, 5, "both connected")
        await reader.stop()  # the outage: the reader misses what follows
        stale = reader.revision
        revision = 0
        for region in ("eu-west", "us-east", "ap-southeast"):
            entry = {"action": "region disabled", "target": region}
            _, revision = await writer.mutate(
                lambda a, r=region: a.with_region(r, "disabled"), entry
            )
        if compact:
            await asyncio.to_thread(etcd.compact, revision)
        await reader.start()
        await _wait(lambda: len(reader.admin.regions) == 3, 5, "reader caught up")
        assert reader.revision >= revision > stale
        assert [e["target"] for e in reader.audit][:3] == ["ap-southeast", "us-east", "eu-west"]
    finally:
        await reader.stop()
        await writer.stop()
