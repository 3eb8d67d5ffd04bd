"""etcd writes per second of a steady cluster: N nodes × M health-checked endpoints.

    .venv/bin/python bench/cluster/writes.py [--nodes 5] [--endpoints 5000] [--seconds 60]

A 3-member etcd on loopback and `--nodes` `gslb serve` processes, each checking the same
`--endpoints` endpoints (5 regions, tcp checks every 10 s, lease_ttl 10 s) on loopback
addresses 127.0.x.y where nothing listens (so every check fails fast and the verdicts
settle after the first round). After every node has published its first verdicts, it
counts for `--seconds` what etcd committed (`etcd_server_proposals_committed_total`, the
raft writes: puts, transactions, lease grants) and the lease keep-alives it received.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from tests.cluster_harness import EtcdCluster, Node, wait_until  # noqa: E402
from tests.conftest import DEMO_DB  # noqa: E402

REGIONS = 5


def files(name: str, endpoints: list[str], state: Path, count: int) -> dict[str, str]:
    per_region = count // REGIONS
    out = {
        "gslb.yaml": (
            f"geoip: {{database: {DEMO_DB}}}\nstate: {{path: {state}}}\n"
            f"cluster:\n  node: {name}\n  etcd: {{endpoints: {endpoints}}}\n"
            "  lease_ttl: 10s\n"
        ),
        "example.yaml": (
            "zone: gslb.example.com\n"
            "soa: {mname: ns1.gslb.example.com, rname: hostmaster.example.com}\n"
            "ns: [ns1.gslb.example.com]\nrecords:\n  ns1: {A: [192.0.2.53]}\n"
            "services:\n  www: {policy: geo}\n"
        ),
    }
    for r in range(REGIONS):
        addresses = "\n".join(
            f"    - 127.{10 + r}.{i // 250}.{1 + i % 250}" for i in range(per_region)
        )
        out[f"regions/r{r}.yaml"] = (
            f"region: r{r}\nlocation: {{lat: {10 * r}, lon: {20 * r}}}\n"
            "health: {type: tcp, port: 9, interval: 10s, timeout: 1s, rise: 2, fall: 2}\n"
            f"services:\n  www.gslb.example.com:\n{addresses}\n"
        )
    return out


def etcd_counters(url: str) -> tuple[float, float]:
    proposals = keepalives = 0.0
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("etcd_server_proposals_committed_total "):
                proposals = float(line.split()[1])
            elif line.startswith("grpc_server_msg_received_total") and "LeaseKeepAlive" in line:
                keepalives += float(line.rsplit(" ", 1)[1])
    return proposals, keepalives


def totals(etcd: EtcdCluster) -> tuple[float, float]:
    """Proposals as the leader counts them (the max over members), keep-alives summed."""
    counts = [etcd_counters(url) for url in etcd.endpoints]
    return max(c[0] for c in counts), sum(c[1] for c in counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--endpoints", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gslb-cluster-writes-") as temp:
        directory = Path(temp)
        etcd = EtcdCluster(directory / "etcd")
        etcd.directory.mkdir()
        etcd.start()
        nodes: list[Node] = []
        try:
            initial = totals(etcd)
            names = [f"n{i}" for i in range(args.nodes)]
            for name in names:
                state = directory / name / "state.json"
                config = files(name, etcd.endpoints, state, args.endpoints)
                nodes.append(Node(directory / name / "zones", config))

            def settled() -> bool:
                view = nodes[0].cluster()
                peers = [n for n in view["nodes"] if n["alive"]]
                return len(peers) == args.nodes and all(
                    len(n["down"]) == args.endpoints for n in peers
                )

            started = time.monotonic()
            wait_until(settled, 120, "every node published its first verdicts", 0.5)
            before, alive_before = totals(etcd), time.monotonic()
            print(
                f"{args.nodes} nodes x {args.endpoints} endpoints settled in "
                f"{time.monotonic() - started:.1f} s after the last start; etcd writes from "
                f"the first start until then: {before[0] - initial[0]:.0f}"
            )
            time.sleep(args.seconds)
            after, elapsed = totals(etcd), time.monotonic() - alive_before
            print(
                f"steady state over {elapsed:.0f} s: "
                f"{(after[0] - before[0]) / elapsed:.2f} etcd writes/s (raft proposals), "
                f"{(after[1] - before[1]) / elapsed:.2f} lease keep-alives/s"
            )
        finally:
            for node in nodes:
                node.stop()
            etcd.stop()


if __name__ == "__main__":
    main()
