"""Signed against unsigned answers, same server, same run; and what signing costs a miss.

    .venv/bin/python bench/dns/dnssec.py --rounds 3          # see --help

1. Throughput with a warm cache: one `gslb serve` (its zone signed, ECDSAP256SHA256 unless
   --algorithm) on core 0, dnsperf on core 1, replaying the query mix of bench/dns/run.py
   (ECS from `--networks` client /24s) twice per round: without DO (the unsigned
   replies) and with DO=1 (signed replies). Each set is sent once through (the cache
   filled), replayed `--warmup` seconds, then measured `--duration` seconds: queries/s and
   the server's CPU seconds per second.
2. The cost of signing on a cache miss, in this process, for both algorithms: the full
   path (`Responder.answer_full`, no cache) for steered queries, and what
   `ZoneSigner.secure` (the signing step of a DO=1 miss) adds to each of their answers.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.flags
import dns.message

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import gslb_process  # noqa: E402
import queries as mix  # noqa: E402
from run import cpu_seconds, dnsperf, geolite2_path, lost_share, stat  # noqa: E402

from gslb.config import load_config  # noqa: E402
from gslb.dns.codec import Query, decode_query  # noqa: E402
from gslb.dns.responder import Responder  # noqa: E402
from gslb.dnssec.signer import ZoneSigner  # noqa: E402
from gslb.geo import GeoDatabase  # noqa: E402
from gslb.plan import ZonePlan, compile_plan  # noqa: E402
from gslb.select import Decision  # noqa: E402
from gslb.state import State, View  # noqa: E402

DEMO_DB = ROOT / "geodata" / "demo-city.mmdb"  # as the sample gslb.yaml names it


def signed_zones(directory: Path, algorithm: str, db: str) -> Path:
    changes = {"rate_limit:": "# rate_limit:", str(DEMO_DB): db}
    zones = gslb_process.sample_zones(directory, changes=changes)
    zone = zones / "gslb.example.com.yaml"
    zone.write_text(zone.read_text() + f"dnssec: {{algorithm: {algorithm}}}\n")
    return zones


def with_do(messages: list[dns.message.Message]) -> list[dns.message.Message]:
    out = []
    for message in messages:
        signed = dns.message.from_wire(message.to_wire())
        signed.use_edns(0, dns.flags.DO, 1232, options=message.options)
        out.append(signed)
    return out


def throughput(args: argparse.Namespace, workdir: Path) -> None:
    zones = signed_zones(workdir, args.algorithm, args.db)
    networks = mix.client_networks(args.db, args.networks)
    plain = list(mix.queries(networks, args.queries))
    sets = {"DO=0": workdir / "plain.bin", "DO=1": workdir / "signed.bin"}
    mix.write_stream(sets["DO=0"], iter(plain))
    mix.write_stream(sets["DO=1"], iter(with_do(plain)))
    process, port, _ = gslb_process.start(zones, workdir / "serve.log")
    subprocess.run(["taskset", "-pc", "0", str(process.pid)], check=True, capture_output=True)
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in sets}
    try:
        for round_number in range(args.rounds):
            for name, data in sets.items():
                dnsperf(port, data, 0, args)  # every query once: the cache filled
                dnsperf(port, data, args.warmup, args)
                before_cpu, before = cpu_seconds(process.pid), time.monotonic()
                output = dnsperf(port, data, args.duration, args)
                cpu = (cpu_seconds(process.pid) - before_cpu) / (time.monotonic() - before)
                qps = stat(output, "Queries per second")
                results[name].append((qps, cpu, lost_share(output)))
                print(f"round {round_number + 1} {name}: {qps:,.0f} q/s, {cpu:.2f} core")
    finally:
        gslb_process.stop(process)
    medians = {name: statistics.median(r[0] for r in rows) for name, rows in results.items()}
    cpu = {name: statistics.median(r[1] for r in rows) for name, rows in results.items()}
    print(
        f"median of {args.rounds}: unsigned {medians['DO=0']:,.0f} q/s ({cpu['DO=0']:.2f} core),"
        f" signed {medians['DO=1']:,.0f} q/s ({cpu['DO=1']:.2f} core):"
        f" signed/unsigned {medians['DO=1'] / medians['DO=0']:.2f}x"
    )


def full_path_us(responder: Responder, wires: list[bytes]) -> float:
    started = time.perf_counter()
    for wire in wires:
        responder.answer_full(wire, "127.0.0.1")
    return (time.perf_counter() - started) / len(wires) * 1e6


def signing_us(
    signer: ZoneSigner, zone: ZonePlan, decided: list[tuple[Query, Decision]], now: float
) -> float:
    started = time.perf_counter()
    for query, decision in decided:
        signer.secure(decision, zone, query.name, now)
    return (time.perf_counter() - started) / len(decided) * 1e6


def miss_cost(args: argparse.Namespace, workdir: Path) -> None:
    """Per steered answer on a miss: the full path unsigned, and what `secure` adds."""
    networks = mix.client_networks(args.db, args.micro_queries)
    wires = [
        m.to_wire()
        for m in mix.queries(networks, args.micro_queries)
        if m.question[0].name.to_text().startswith("www.")
    ]
    with GeoDatabase(args.db) as geo:
        for algorithm in ("ECDSAP256SHA256", "ED25519"):
            zones = signed_zones(workdir / algorithm, algorithm, args.db)
            view = View(compile_plan(load_config(str(zones))), State())
            responder = Responder(lambda view=view: view, geo)  # type: ignore[misc]
            zone = view.plan.zones["gslb.example.com."]
            signer = zone.signer
            assert signer is not None
            decided = [
                (q, responder.decide(q, "127.0.0.1", view)) for q in map(decode_query, wires)
            ]
            now = time.time()

            # Interleaved, the fastest run of each: noise from other processes only adds.
            runs = [
                (full_path_us(responder, wires), signing_us(signer, zone, decided, now))
                for _ in range(args.micro_runs)
            ]
            print(
                f"{algorithm}: full path (unsigned) {min(r[0] for r in runs):.1f} µs,"
                f" signing adds {min(r[1] for r in runs):.1f} µs per steered answer"
                f" ({len(wires)} queries, {len(signer.keys)} active key)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--networks", type=int, default=5000, help="client /24s")
    parser.add_argument("--queries", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=10, help="dnsperf -c")
    parser.add_argument("--outstanding", type=int, default=200, help="dnsperf -q")
    parser.add_argument(
        "--algorithm", default="ECDSAP256SHA256", choices=("ECDSAP256SHA256", "ED25519")
    )
    parser.add_argument("--micro-queries", type=int, default=5000)
    parser.add_argument("--micro-runs", type=int, default=7)
    parser.add_argument("--only", choices=("throughput", "miss"))
    args = parser.parse_args()
    args.db = geolite2_path()  # as bench/dns/run.py: thousands of real client networks
    with tempfile.TemporaryDirectory(prefix="gslb-dnssec-bench-") as temporary:
        workdir = Path(temporary)
        if args.only != "miss":
            throughput(args, workdir / "serve")
        if args.only != "throughput":
            miss_cost(args, workdir / "miss")


if __name__ == "__main__":
    main()
