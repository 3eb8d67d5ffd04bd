"""How fast several `gslb serve` nodes act as one, over a real 3-member etcd on loopback.

    .venv/bin/python bench/cluster/propagation.py [--trials 100] [--kills 3]
        [--outage 60 --changes 1000]

- propagation: `POST /v1/regions/eu-west/disable|enable` on node A, alternately; the time
  until node B's DNS answer (polled over UDP, back to back) changes; from the start of the
  API call and from its 200 (the commit).
- kill -9: a third node is killed; the time until A's `/v1/cluster` shows it not alive
  (lease_ttl is 2 s here, as in the tests).
- catch-up: B talks to one etcd member only; that member is down for `--outage` seconds
  while A commits `--changes` changes (through the two others, which keep quorum); the
  time from the member's restart until B's admin state equals A's. `--outage 0` skips it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from tests.cluster_harness import (  # noqa: E402
    REGIONS,
    EtcdCluster,
    Node,
    is_eu,
    is_us,
    node_files,
    wait_until,
)
from tests.helpers_http import HealthServer, free_port  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def node(directory: Path, name: str, endpoints: list[str], port: int) -> Node:
    files = node_files(name, endpoints, "/bench/", directory / name / "state.json", port)
    return Node(directory / name / "zones", files)


def propagation(a: Node, b: Node, trials: int) -> None:
    from_call: list[float] = []
    from_commit: list[float] = []
    for trial in range(trials):
        action, want = ("disable", is_us) if trial % 2 == 0 else ("enable", is_eu)
        started = time.perf_counter()
        status, body = a.api("POST", f"/v1/regions/eu-west/{action}")
        committed = time.perf_counter()
        assert status == 200, body
        while not want(b.answer()):
            if time.perf_counter() - started > 5:
                raise AssertionError("no propagation within 5 s")
        seen = time.perf_counter()
        from_call.append(seen - started)
        from_commit.append(seen - committed)
    for label, values in (("API call start", from_call), ("API 200 (commit)", from_commit)):
        print(
            f"propagation A->B from {label}: n={len(values)} "
            f"p50={1000 * statistics.median(values):.1f} ms "
            f"p99={1000 * percentile(values, 0.99):.1f} ms "
            f"max={1000 * max(values):.1f} ms"
        )


def kill_time(directory: Path, a: Node, etcd: EtcdCluster, port: int, kills: int) -> None:
    times = []
    for i in range(kills):
        victim = node(directory, f"victim{i}", etcd.endpoints, port)
        wait_until(lambda v=f"victim{i}": v in a.alive_nodes(), 10, "victim registered")  # type: ignore[misc]
        killed = time.perf_counter()
        victim.kill9()
        wait_until(lambda v=f"victim{i}": v not in a.alive_nodes(), 10, "victim gone", 0.05)  # type: ignore[misc]
        times.append(time.perf_counter() - killed)
    print(
        "kill -9 -> out of the live set (lease_ttl 2 s): " + ", ".join(f"{t:.2f} s" for t in times)
    )


def endpoint_admin(status: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (r["name"], e["address"], e["admin"]) for r in status["regions"] for e in r["endpoints"]
    }


def catch_up(a: Node, b: Node, etcd: EtcdCluster, outage: float, changes: int) -> None:
    etcd.kill(2)  # the only member b talks to
    wait_until(lambda: not b.connected(), 15, "b disconnected", 0.1)
    started = time.perf_counter()
    for i in range(changes):
        action = "disable" if i % 2 == 0 else "enable"
        address = REGIONS["us-east"][0][i % 2]
        status, body = a.api("POST", f"/v1/regions/us-east/endpoints/{address}/{action}")
        assert status == 200, body
    made = time.perf_counter() - started
    time.sleep(max(0.0, outage - made))
    _, final = a.api("GET", "/v1/status")
    want = endpoint_admin(final)
    revived = time.perf_counter()
    etcd.revive(2)

    def caught_up() -> bool:
        try:
            _, body = b.api("GET", "/v1/status", timeout=2)
        except OSError:
            return False
        return bool(body["cluster"]["connected"]) and endpoint_admin(body) == want

    wait_until(caught_up, 60, "b caught up", 0.05)
    print(
        f"catch-up: {changes} changes made in {made:.1f} s during a {outage:.0f} s outage of "
        f"b's etcd member; b up to date {time.perf_counter() - revived:.2f} s after the "
        "member's restart (member start included)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--outage", type=float, default=60.0)
    parser.add_argument("--changes", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gslb-cluster-bench-") as temp:
        directory = Path(temp)
        etcd = EtcdCluster(directory / "etcd")
        etcd.directory.mkdir()
        etcd.start()
        addresses = [a for addrs, _, _ in REGIONS.values() for a in addrs]
        port = free_port(addresses)
        servers = [HealthServer(address, port).start() for address in addresses]
        nodes: list[Node] = []
        try:
            a = node(directory, "a", etcd.endpoints[:2], port)
            b = node(directory, "b", etcd.endpoints[2:], port)
            nodes += [a, b]
            wait_until(lambda: {"a", "b"} <= a.alive_nodes(), 10, "both registered")
            wait_until(lambda: is_eu(b.answer()), 10, "eu-west answered")
            propagation(a, b, args.trials)
            if args.kills:
                kill_time(directory, a, etcd, port, args.kills)
            if args.outage > 0:
                catch_up(a, b, etcd, args.outage, args.changes)
        finally:
            for n in nodes:
                n.stop()
            for server in servers:
                server.stop()
            etcd.stop()


if __name__ == "__main__":
    main()
