"""A real 3-member etcd cluster on free loopback ports, and `gslb serve` nodes that use it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import DEMO_DB, Served, start_serve, write_config
from tests.helpers_http import free_port

ETCD = shutil.which("etcd")
TOKEN = "cluster-test-token"
T = TypeVar("T")


def wait_until(probe: Callable[[], T | None], within: float, what: str, step: float = 0.02) -> T:
    """Poll `probe` until it returns a true value; fail naming `what` after `within` s."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.1f}s: {what}")
        time.sleep(step)


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


@dataclass
class EtcdCluster:
    directory: Path
    members: list[Member] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start(self, size: int = 3) -> EtcdCluster:
        for i in range(size):
            self.members.append(
                Member(
                    f"m{i}",
                    free_port(["127.0.0.1"]),
                    free_port(["127.0.0.1"]),
                    self.directory / f"m{i}",
                )
            )
        for member in self.members:
            self._launch(member, "new")
        for member in self.members:
            wait_until(lambda m=member: self.healthy(m), 20, f"etcd {member.name} healthy")  # type: ignore[misc]
        return self

    def _launch(self, member: Member, state: str) -> None:
        assert ETCD is not None
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        log = open(self.directory / f"{member.name}.log", "ab")  # noqa: SIM115 (kept by Popen)
        member.process = subprocess.Popen(
            [
                ETCD,
                "--name",
                member.name,
                "--data-dir",
                str(member.data_dir),
                "--listen-client-urls",
                member.client_url,
                "--advertise-client-urls",
                member.client_url,
                "--listen-peer-urls",
                member.peer_url,
                "--initial-advertise-peer-urls",
                member.peer_url,
                "--initial-cluster",
                initial,
                "--initial-cluster-state",
                state,
                "--initial-cluster-token",
                self.directory.name,
                # Fast elections keep the failure tests short; minimum lease TTL ~0.75 s.
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
                "--log-level",
                "warn",
            ],
            stdout=log,
            stderr=log,
        )
        log.close()

    def healthy(self, member: Member) -> bool:
        try:
            with urllib.request.urlopen(member.client_url + "/health", timeout=1) as response:
                return bool(json.loads(response.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def kill(self, index: int) -> None:
        process = self.members[index].process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()

    def revive(self, index: int) -> None:
        self._launch(self.members[index], "existing")

    def compact(self, revision: int) -> None:
        body = json.dumps({"revision": str(revision), "physical": True}).encode()
        request = urllib.request.Request(
            self.endpoints[0] + "/v3/kv/compaction", data=body, method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    def stop(self) -> None:
        for member in self.members:
            if member.process is not None and member.process.poll() is None:
                member.process.kill()
                member.process.wait()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    if ETCD is None:
        pytest.skip("etcd is not installed (Debian: etcd-server)")
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd")).start()
    yield cluster
    cluster.stop()


REGIONS = {
    "us-east": (["127.0.1.1", "127.0.1.2"], "lat: 39.0, lon: -77.5", "continents: [NA, SA]"),
    "eu-west": (["127.0.2.1", "127.0.2.2"], "lat: 53.3, lon: -6.3", "continents: [EU, AF]"),
}
EU_CLIENT = "81.2.69.0"


def node_files(
    name: str,
    endpoints: list[str],
    prefix: str,
    state: Path,
    port: int,
    eu_port: int | None = None,
    quorum: str = "majority",
) -> dict[str, str]:
    """A node's config; `eu_port` points its eu-west checks elsewhere (a per-node view)."""
    files = {
        "gslb.yaml": f"""
            geoip: {{database: {DEMO_DB}}}
            state: {{path: {state}}}
            api: {{token_env: GSLB_TEST_TOKEN}}
            cluster:
              node: {name}
              etcd: {{endpoints: {json.dumps(endpoints)}, prefix: {prefix}}}
              health_quorum: {quorum}
              lease_ttl: 2s
        """,
        "gslb.example.com.yaml": """
            zone: gslb.example.com
            soa: {mname: ns1.gslb.example.com, rname: hostmaster.example.com}
            ns: [ns1.gslb.example.com]
            records:
              ns1: {A: [192.0.2.53]}
            services:
              www: {ttl: 5, policy: geo, select: all, answers: 4, regions: [eu-west, us-east]}
        """,
    }
    for region, (addresses, location, serves) in REGIONS.items():
        listed = "\n".join(f"    - {a}" for a in addresses)
        check_port = eu_port if region == "eu-west" and eu_port is not None else port
        files[f"regions/{region}.yaml"] = (
            f"region: {region}\nlocation: {{{location}}}\nserves: {{{serves}}}\n"
            f"health: {{type: http, path: /health, port: {check_port}, interval: 0.2s, "
            f"timeout: 0.15s, rise: 2, fall: 2}}\n"
            f"services:\n  www.gslb.example.com:\n{listed}\n"
        )
    return files


class Node:
    """One `gslb serve` process of the cluster, with DNS and API helpers."""

    def __init__(self, directory: Path, files: dict[str, str]) -> None:
        self.directory = directory
        write_config(directory, files)
        self.served: Served = self.start()

    def start(self) -> Served:
        self.served = start_serve(self.directory, env={"GSLB_TEST_TOKEN": TOKEN})
        return self.served

    def kill9(self) -> None:
        self.served.process.send_signal(signal.SIGKILL)
        self.served.process.wait()

    def stop(self) -> int:
        return self.served.stop()

    def answer(self, client: str = EU_CLIENT) -> set[str]:
        query = dns.message.make_query(
            "www.gslb.example.com", "A", use_edns=0, options=[dns.edns.ECSOption(client, 24)]
        )
        reply = dns.query.udp(query, "127.0.0.1", port=self.served.dns_port, timeout=2)
        assert reply.rcode() == dns.rcode.NOERROR
        return {rd.address for rrset in reply.answer for rd in rrset}

    def api(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.served.api_port}{path}", data=data, method=method
        )
        request.add_header("Authorization", f"Bearer {TOKEN}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def cluster(self) -> dict[str, Any]:
        status, body = self.api("GET", "/v1/cluster")
        assert status == 200, body
        return body

    def connected(self) -> bool:
        return bool(self.cluster()["etcd"]["connected"])

    def alive_nodes(self) -> set[str]:
        return {n["name"] for n in self.cluster()["nodes"] if n["alive"]}

    def region_admin(self) -> dict[str, str]:
        _, body = self.api("GET", "/v1/status")
        return {r["name"]: r["admin"] for r in body["regions"]}


def is_eu(answer: set[str]) -> bool:
    return bool(answer) and all(a.startswith("127.0.2.") for a in answer)


def is_us(answer: set[str]) -> bool:
    return bool(answer) and all(a.startswith("127.0.1.") for a in answer)


def metric(node: Node, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.served.api_port}/metrics") as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return None


def stop_all(nodes: list[Node]) -> None:
    for node in nodes:
        if node.served.process.poll() is None:
            node.stop()


def environment_ok() -> bool:
    return ETCD is not None and os.access(ETCD, os.X_OK)
