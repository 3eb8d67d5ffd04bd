"""gslb serve against PowerDNS (geoip backend) and gdnsd (plugin_geoip), driven by dnsperf.

    apt-get install -y pdns-server pdns-backend-geoip gdnsd dnsperf   # Debian packages
    .venv/bin/pip install maxminddb-geolite2                         # GeoLite2-City, 2018
    .venv/bin/python bench/dns/run.py --rounds 3                     # see --help
    .venv/bin/python bench/dns/run.py --networks 1000000 --zipf 1.1 --queries 6000000
    .venv/bin/python bench/dns/run.py ... --before /tmp/base         # also that checkout's gslb

Each server in turn runs alone on core 0 (`taskset -c 0`, one thread for answering:
PowerDNS `receiver-threads=1 distributor-threads=1`, gdnsd `udp_threads => 1`, gslb's one
event loop under uvloop) with the same zone and the same GeoLite2-City database; `dnsperf`
runs on core 1. The queries (bench/dns/queries.py) mix A, AAAA, SOA, NS and non-existent
names, each with an ECS option for one of thousands of real client /24s (or, with
--zipf, for up to a million of them with Zipf popularity, as a large resolver's clients
ask), and are replayed in a loop. Per server and round: a warm-up (every query once,
then a few seconds of replay: the servers' caches are filled), a measured run at full
speed (queries/s, and the server's CPU time from /proc), and a latency run at a fixed rate
(`-v`: every query's latency, for p50/p99). Before the first round each server's answers to
a sample of the queries are checked: gslb's against its own full path in this process,
PowerDNS's and gdnsd's for the same rcode and region as gslb. Everything listens on
127.0.0.1; the servers' files go to a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.message
import dns.query
import dns.rcode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import queries as mix  # noqa: E402
import servers  # noqa: E402

PORTS = {"gslb": 5301, "PowerDNS": 5302, "gdnsd": 5303, "gslb-before": 5304, "gslb-py": 5305}
REGION_OF = {
    address: region
    for region, spec in servers.REGIONS.items()
    for address in [a for a, _ in spec.v4] + list(spec.v6)
}


@dataclass
class Result:
    server: str
    qps: float
    cpu: float  # server CPU seconds per wall second during the measured run
    lost: float  # share of queries lost in the measured run
    p50_ms: float | None = None
    p99_ms: float | None = None
    latency_rate: int = 0
    latency_lost: float = 0.0
    rss_mib: float = 0.0  # the server's resident memory after the measured run


def geolite2_path() -> str:
    try:
        import geolite2  # type: ignore[import-untyped]
    except ImportError:
        sys.exit("needs the GeoLite2-City database: .venv/bin/pip install maxminddb-geolite2")
    return str(Path(geolite2.__file__).parent / "_maxminddb_geolite2" / "GeoLite2-City.mmdb")


def need_tools() -> None:
    missing = [t for t in ("dnsperf", "pdns_server", "gdnsd", "taskset") if not shutil.which(t)]
    if missing:
        sys.exit(
            f"missing {', '.join(missing)}: "
            "apt-get install -y dnsperf pdns-server pdns-backend-geoip gdnsd util-linux"
        )


def process_tree(pid: int) -> dict[int, list[str]]:
    """/proc/N/stat fields (after the command name) of `pid` and its descendants."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree: dict[int, list[str]] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        found = stats.get(current)
        if found is not None:
            tree[current] = found
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its descendants (workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    # utime, stime
    return sum((int(f[11]) + int(f[12])) / ticks for f in process_tree(pid).values())


def tree_rss_kib(pid: int) -> int:
    """RSS of `pid` and its descendants (gdnsd's daemon, gslb's workers)."""
    pages = os.sysconf("SC_PAGESIZE") // 1024
    return sum(int(f[21]) * pages for f in process_tree(pid).values())  # rss, in pages


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start(server: servers.Server, core: str) -> subprocess.Popen[bytes]:
    log = (server.workdir / "server.log").open("wb")
    process = subprocess.Popen(
        ["taskset", "-c", core, *server.command], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
    )
    query = dns.message.make_query(f"{servers.ZONE}.", "SOA")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{server.name} exited: see {server.workdir / 'server.log'}")
        try:
            dns.query.udp(query, "127.0.0.1", port=server.port, timeout=0.5)
            return process
        except (dns.exception.Timeout, OSError):
            time.sleep(0.2)
    process.kill()
    sys.exit(f"{server.name} did not answer within 60 s: see {server.workdir / 'server.log'}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def dnsperf(
    port: int, data: Path, seconds: float, args: argparse.Namespace, rate: int | None = None
) -> str:
    """Replay `data` for `seconds`, or once through when `seconds` is 0."""
    command = ["taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-B"]
    command += ["-d", str(data), "-c", str(args.clients)]
    command += ["-l", str(seconds)] if seconds else ["-n", "1"]
    command += ["-q", str(args.outstanding), "-t", "2"]
    if rate is not None:
        command += ["-Q", str(rate), "-v"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"dnsperf failed: {done.stderr.strip()}")
    return done.stdout


def stat(output: str, label: str) -> float:
    match = re.search(rf"{label}:\s+([\d.]+)", output)
    return float(match.group(1)) if match else 0.0


def lost_share(output: str) -> float:
    match = re.search(r"Queries lost:\s+\d+ \(([\d.]+)%\)", output)
    return float(match.group(1)) / 100 if match else 0.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(
    server: servers.Server, data: Path, args: argparse.Namespace, rate: int | None
) -> Result:
    process = start(server, "0")
    try:
        dnsperf(server.port, data, 0, args)  # every query once: caches filled
        dnsperf(server.port, data, args.warmup, args)
        before_cpu, before = cpu_seconds(process.pid), time.monotonic()
        output = dnsperf(server.port, data, args.duration, args)
        cpu = (cpu_seconds(process.pid) - before_cpu) / (time.monotonic() - before)
        result = Result(server.name, stat(output, "Queries per second"), cpu, lost_share(output))
        result.rss_mib = tree_rss_kib(process.pid) / 1024
        if rate:
            verbose = dnsperf(server.port, data, args.latency_seconds, args, rate)
            latencies = [float(m) for m in re.findall(r"^> \S+ .* ([\d.]+)$", verbose, re.M)]
            if latencies:
                result.p50_ms = percentile(latencies, 0.50) * 1000
                result.p99_ms = percentile(latencies, 0.99) * 1000
            result.latency_rate = rate
            result.latency_lost = lost_share(verbose)
        return result
    finally:
        stop(process)


# --- correctness -----------------------------------------------------------------------


def answer_summary(reply: dns.message.Message) -> tuple[str, str, frozenset[str]]:
    """(rcode, region of the addresses or "static", the answer's rdata)."""
    rdatas = frozenset(rd.to_text() for rrset in reply.answer for rd in rrset)
    regions = {REGION_OF[a] for a in rdatas if a in REGION_OF}
    region = regions.pop() if len(regions) == 1 else ("static" if not regions else "mixed")
    return dns.rcode.to_text(reply.rcode()), region, rdatas


def scopes(reply: dns.message.Message) -> list[int]:
    return [o.scopelen for o in reply.options if isinstance(o, dns.edns.ECSOption)]


def check_answers(sample: list[dns.message.Message], db: str, workdir: Path) -> None:
    """gslb against its own full path; the others against gslb. Prints what it found."""
    from gslb.config import load_config
    from gslb.dns.responder import Responder
    from gslb.geo import GeoDatabase
    from gslb.plan import compile_plan
    from gslb.state import State, View

    made = {
        "gslb": servers.gslb(workdir / "gslb", db, PORTS["gslb"], sys.executable, True),
        "PowerDNS": servers.pdns(workdir / "pdns", db, PORTS["PowerDNS"]),
        "gdnsd": servers.gdnsd(workdir / "gdnsd", db, PORTS["gdnsd"]),
    }
    view = View(compile_plan(load_config(str(workdir / "gslb" / "zones"))), State())
    reference = Responder(lambda: view, GeoDatabase(db))
    expected = []
    for query in sample:
        wire = reference.answer_full(query.to_wire(), "127.0.0.1")
        assert wire is not None
        expected.append(dns.message.from_wire(wire))
    for name, server in made.items():
        port = server.port
        process = start(server, "0")
        same_rcode = same_region = exact = scoped = 0
        try:
            for query, want in zip(sample, expected, strict=True):
                got = dns.query.udp(query, "127.0.0.1", port=port, timeout=2)
                g, w = answer_summary(got), answer_summary(want)
                same_rcode += g[0] == w[0]
                same_region += g[1] == w[1]
                exact += g == w
                scoped += scopes(got) == scopes(want)
        finally:
            stop(process)
        n = len(sample)
        print(
            f"  {name:9} vs gslb's full path: rcode {same_rcode}/{n}, region {same_region}/{n}, "
            f"same records {exact}/{n}, same ECS scope {scoped}/{n}"
        )


# --- memory ----------------------------------------------------------------------------


def measure_rss(db: str, workdir: Path, args: argparse.Namespace) -> None:
    """RSS of gslb serve with the full GeoLite2-City open and 100k cached answers."""
    nets = mix.client_networks(db, 20_000, seed=7)
    rng = random.Random(7)
    stream = workdir / "rss.bin"
    with stream.open("wb") as out:
        for i in range(args.rss_answers):
            net = nets[i % len(nets)]
            query = dns.message.make_query(
                f"rss{i}.{servers.ZONE}.", "A", use_edns=0,
                options=[dns.edns.ECSOption(str(net.network_address), 24)],
            )  # fmt: skip
            query.id = rng.randrange(65536)
            wire = query.to_wire()
            out.write(len(wire).to_bytes(2, "big") + wire)
    server = servers.gslb(
        workdir / "gslb", db, PORTS["gslb"], sys.executable, args.loop == "uvloop"
    )
    process = start(server, "0")
    try:
        idle = rss_kib(process.pid)
        dnsperf_once = ["taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", str(server.port)]
        dnsperf_once += ["-B", "-d", str(stream), "-n", "1", "-c", "10", "-q", "100", "-t", "5"]
        done = subprocess.run(dnsperf_once, capture_output=True, text=True, check=True)
        full = rss_kib(process.pid)
        print(
            f"gslb RSS: {idle / 1024:.0f} MiB after start (GeoLite2-City open), "
            f"{full / 1024:.0f} MiB after {args.rss_answers:,} distinct queries "
            f"({stat(done.stdout, 'Queries completed'):.0f} answered) from "
            f"{len(nets):,} client /24s: each one cached answer, one parsed query, one "
            f"client entry per /24, one geo cache entry per database network"
        )
    finally:
        stop(process)


# --- report ----------------------------------------------------------------------------


def report(rounds: list[dict[str, Result]]) -> None:
    names = [n for n in ("gslb", "gslb-py", "gslb-before", "PowerDNS", "gdnsd") if n in rounds[0]]
    others = [n for n in names if n != "gslb"]
    head = "| round | " + " | ".join(f"{n} q/s" for n in names)
    head += "".join(f" | gslb/{n}" for n in others)
    print("\n" + head + " |")
    print("|" + "---|" * (head.count("|")))
    ratios: dict[str, list[float]] = {n: [] for n in others}
    for i, results in enumerate(rounds, 1):
        row = f"| {i} | " + " | ".join(f"{results[n].qps:,.0f}" for n in names)
        for other in others:
            if other in names and results[other].qps:
                ratio = results["gslb"].qps / results[other].qps
                ratios[other].append(ratio)
                row += f" | {ratio:.2f}x"
        print(row + " |")
    row = "| **median** | " + " | ".join(
        f"{statistics.median(r[n].qps for r in rounds):,.0f}" for n in names
    )
    for other in others:
        if ratios[other]:
            row += f" | **{statistics.median(ratios[other]):.2f}x**"
    print(row + " |")
    print(
        "\n| server | CPU (core-s/s) | CPU µs/query | lost | latency at q/s | p50 ms | p99 ms "
        "| lost there | RSS MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        per_round = [r[name] for r in rounds]
        p50 = [r.p50_ms for r in per_round if r.p50_ms is not None]
        p99 = [r.p99_ms for r in per_round if r.p99_ms is not None]
        cells = [
            name,
            f"{statistics.median(r.cpu for r in per_round):.2f}",
            f"{statistics.median(r.cpu / r.qps * 1e6 for r in per_round if r.qps):.2f}",
            f"{statistics.median(r.lost for r in per_round):.2%}",
            f"{per_round[0].latency_rate:,}",
            f"{statistics.median(p50):.3f}" if p50 else "-",
            f"{statistics.median(p99):.3f}" if p99 else "-",
            f"{statistics.median(r.latency_lost for r in per_round):.2%}",
            f"{max(r.rss_mib for r in per_round):.0f}",
        ]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument(
        "--latency-rate",
        type=int,
        default=0,
        help="q/s of the latency runs (default: 1.5x PowerDNS)",
    )
    parser.add_argument("--networks", type=int, default=5000, help="client /24s")
    parser.add_argument("--queries", type=int, default=200_000, help="queries in the file")
    parser.add_argument(
        "--zipf",
        type=float,
        default=0.0,
        help="ECS networks drawn with Zipf popularity of this exponent (e.g. 1.1; "
        "default: uniform). Large resolvers: --networks 1000000 --zipf 1.1 --queries 6000000",
    )
    parser.add_argument("--clients", type=int, default=10, help="dnsperf -c")
    parser.add_argument("--outstanding", type=int, default=200, help="dnsperf -q")
    parser.add_argument(
        "--servers",
        default="gslb,PowerDNS,gdnsd",
        help="of gslb, gslb-py (GSLB_UDP_BATCH=py: the batch loop's ctypes twin), PowerDNS, gdnsd",
    )
    parser.add_argument(
        "--cache-entries", type=int, default=0, help="gslb's dns.cache_entries (default: its own)"
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="also run `gslb serve` from this checkout (its own .venv) as gslb-before",
    )
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--check", type=int, default=400, help="queries checked per server")
    parser.add_argument("--rss", action="store_true", help="measure gslb's memory instead")
    parser.add_argument("--rss-answers", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    need_tools()
    # This process, dnsperf and everything else of the harness on core 1: the servers
    # alone on core 0 (reading dnsperf's output on core 0 would take the server's time).
    os.sched_setaffinity(0, {1})
    db = geolite2_path()
    workdir = Path(tempfile.mkdtemp(prefix="gslb-bench-dns-"))
    try:
        run(args, db, workdir)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, db: str, workdir: Path) -> None:
    print(f"machine: {os.cpu_count()} cores, {platform_line()}")
    if args.rss:
        measure_rss(db, workdir, args)
        return
    nets = mix.client_networks(db, args.networks)
    data = workdir / "queries.bin"
    shares = ", ".join(f"{t} {name} {w}%" for name, t, w in mix.MIX)
    if args.zipf:
        count = mix.write_wires(data, mix.zipf_queries(nets, args.queries, args.zipf))
        distinct = mix.distinct_networks(len(nets), args.queries, args.zipf)
        where = ", ".join(
            f"{c} {v:.0%}" for c, v in mix.continent_shares(db, nets, args.zipf).items()
        )
        print(
            f"{count:,} queries ({shares}) with ECS from {len(nets):,} client /24s, Zipf "
            f"s = {args.zipf}: {distinct:,} distinct networks asked; by continent {where}"
        )
    else:
        count = mix.write_stream(data, mix.queries(nets, args.queries))
        print(f"{count:,} queries ({shares}) with ECS from {len(nets):,} client /24s")
    if args.check:
        if args.zipf:
            wires = mix.zipf_queries(nets, args.check, args.zipf, seed=99)
            sample = [dns.message.from_wire(wire) for wire in wires]
        else:
            sample = list(mix.queries(nets, args.check, seed=99))
        check_answers(sample, db, workdir)
    wanted = args.servers.split(",")
    makers = {
        "gslb": lambda: servers.gslb(
            workdir / "gslb",
            db,
            PORTS["gslb"],
            sys.executable,
            args.loop == "uvloop",
            args.cache_entries,
        ),
        # gslb with the UDP batch loop's pure-Python twin instead of its C module
        "gslb-py": lambda: servers.with_env(
            servers.gslb(
                workdir / "gslb-py",
                db,
                PORTS["gslb-py"],
                sys.executable,
                args.loop == "uvloop",
                args.cache_entries,
            ),
            "gslb-py",
            GSLB_UDP_BATCH="py",
        ),
        "PowerDNS": lambda: servers.pdns(workdir / "pdns", db, PORTS["PowerDNS"]),
        "gdnsd": lambda: servers.gdnsd(workdir / "gdnsd", db, PORTS["gdnsd"]),
    }
    if args.before is not None:
        before = args.before.resolve()
        wanted.append("gslb-before")
        makers["gslb-before"] = lambda: servers.gslb(
            workdir / "gslb-before",
            db,
            PORTS["gslb-before"],
            str(before / ".venv" / "bin" / "python"),
            args.loop == "uvloop",
            args.cache_entries,
            cwd=before,
        )
    rate = args.latency_rate
    rounds: list[dict[str, Result]] = []
    for number in range(1, args.rounds + 1):
        results: dict[str, Result] = {}
        # PowerDNS first: its rate sets the latency runs' rate when none is given.
        for name in sorted(wanted, key=lambda n: n != "PowerDNS"):
            if not rate and name == "PowerDNS":
                results[name] = measure(makers[name](), data, args, None)
                rate = int(results[name].qps * 1.5)
                results[name] = measure(makers[name](), data, args, rate)
            else:
                results[name] = measure(makers[name](), data, args, rate or 50_000)
            r = results[name]
            print(
                f"round {number}: {name:9} {r.qps:>9,.0f} q/s, CPU {r.cpu:.2f}, lost {r.lost:.2%}; "
                f"at {r.latency_rate:,} q/s p50 {r.p50_ms or 0:.3f} ms p99 {r.p99_ms or 0:.3f} ms "
                f"(lost {r.latency_lost:.2%}); RSS {r.rss_mib:.0f} MiB; "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        rounds.append(results)
    report(rounds)


def platform_line() -> str:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions = []
    for package in ("pdns-server", "gdnsd", "dnsperf"):
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True
        )
        versions.append(f"{package} {done.stdout or '?'}")
    return f"{model}; Python {sys.version.split()[0]}; " + ", ".join(versions)


if __name__ == "__main__":
    main()
