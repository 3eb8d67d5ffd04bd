"""How fast can a Python proxy be here? HAProxy, two bare relays and `gslb proxy`, same run.

    .venv/bin/python bench/proxy/ceiling.py [--duration 10] [--rounds 3]

Issue 14 asks for 0.8x HAProxy's requests/s. This puts that against what the runtime allows:
`tcp-relay` and `http-relay` (bench/proxy/relays.py) copy bytes between a client connection
and its own backend connection on uvloop, the second also parsing both directions with
httptools, and nothing else, so no Python proxy that forwards HTTP can do less per request.
If even they are below the target, the target is beyond any design in this runtime, and the
figure says by how much. Layout as bench/proxy/run.py (each proxy alone on core 0, wrk -c50
keep-alive and one nginx worker as the three backends on core 1), on its own ports, so it
can run beside the other proxy benchmarks' processes. Per proxy: requests/s, p99, and CPU
µs per request (user and kernel, from /proc/PID/stat over the measured run), which moves
less than requests/s when other work takes turns on the core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.proxy.cpu import TICKS, cpu_ticks, requests_of  # noqa: E402
from bench.proxy.run import (  # noqa: E402
    LOAD_CORE,
    PROXY_CORE,
    backends_conf,
    haproxy_conf,
    need,
    parse_wrk,
    process,
    wrk,
)

BACKENDS = (19301, 19302, 19303)
PORTS = {"haproxy": 18801, "tcp-relay": 18802, "http-relay": 18803, "gslb": 18804}
RELAYS = ROOT / "bench" / "proxy" / "relays.py"


def command(name: str, tmp: Path) -> list[str]:
    pin = ["taskset", "-c", PROXY_CORE]
    port = PORTS[name]
    if name == "haproxy":
        conf = haproxy_conf(tmp, f"  bind 127.0.0.1:{port}\n", "ceiling-haproxy", BACKENDS)
        return [*pin, "haproxy", "-f", str(conf), "-db"]
    if name.endswith("-relay"):
        kind = name.split("-")[0]
        return [*pin, sys.executable, str(RELAYS), kind, str(port), *map(str, BACKENDS)]
    directory = tmp / "gslb" / "regions"
    directory.mkdir(parents=True)
    members = "\n".join(
        f'    - {{name: b{i}, url: "http://127.0.0.1:{p}"}}' for i, p in enumerate(BACKENDS, 1)
    )
    (directory / "bench.yaml").write_text(
        f"region: bench\nlocation: {{lat: 0, lon: 0}}\nproxy:\n  listen: 127.0.0.1:{port}\n"
        f"  method: round_robin\n  backends:\n{members}\n"
    )
    code = (
        "import sys; from gslb.proxy.app import main; "
        f"sys.exit(main({str(tmp / 'gslb')!r}, 'bench', None, None))"
    )
    return [*pin, sys.executable, "-P", "-c", code]


def measure(name: str, tmp: Path, duration: float, warmup: float) -> dict[str, float]:
    port = PORTS[name]
    with process(command(name, tmp), port, tmp / f"{name}.log") as proc:
        wrk(port, 50, warmup)
        before = cpu_ticks(proc.pid)
        out = wrk(port, 50, duration)
        after = cpu_ticks(proc.pid)
    result = parse_wrk(name, out)
    per = 1e6 / TICKS / requests_of(out)
    return {
        "rps": result.rps,
        "p99": result.p99_ms,
        "errors": result.errors,
        "user": (after[0] - before[0]) * per,
        "kernel": (after[1] - before[1]) * per,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", nargs="*", choices=list(PORTS), default=list(PORTS))
    args = parser.parse_args()
    need("wrk", "haproxy", "nginx", "taskset")
    os.environ["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    print(f"proxy on core {PROXY_CORE}; wrk -c50 keep-alive and nginx backends on core {LOAD_CORE}")
    print("| round | proxy | req/s | vs HAProxy | p99 ms | user µs/req | kernel µs/req | errors |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    ratios: dict[str, list[float]] = {name: [] for name in args.only}
    for n in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory(prefix="gslb-ceiling-") as t:
            tmp = Path(t)
            conf = str(backends_conf(tmp, BACKENDS))
            backends = ["taskset", "-c", LOAD_CORE, "nginx", "-c", conf, "-p", t]
            with process(backends, BACKENDS[0], tmp / "backends.log"):
                got = {name: measure(name, tmp, args.duration, args.warmup) for name in args.only}
        base = got.get("haproxy")
        for name, r in got.items():
            ratio = r["rps"] / base["rps"] if base else float("nan")
            ratios[name].append(ratio)
            print(
                f"| {n} | {name} | {r['rps']:,.0f} | {ratio:.2f}x | {r['p99']:.2f} "
                f"| {r['user']:.1f} | {r['kernel']:.1f} | {r['errors']:.0f} |"
            )
        sys.stdout.flush()
    if args.rounds > 1:
        medians = ", ".join(f"{k} {statistics.median(v):.2f}x" for k, v in ratios.items())
        print(f"median req/s vs HAProxy over {args.rounds} rounds: {medians}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
