"""Benchmark `gslb proxy` against HAProxy and nginx over the same three backends.

    apt-get install -y haproxy nginx wrk        # once; this script installs nothing
    .venv/bin/python bench/proxy/run.py [--duration 10] [--connections 50] [--rounds 1]

Layout (a two-core machine): each proxy in turn runs alone on core 0 (`taskset -c 0`, one
process, one thread); `wrk` and the backends (one nginx worker serving three ports with
`return 200`) share core 1. Keep-alive on both sides, 50 connections, round robin. Each
proxy gets a warm-up run, then a measured one; the table gives requests/s, p50 and p99
latency, and the ratios to HAProxy. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BACKEND_PORTS = (19101, 19102, 19103)
PROXY_PORTS = {"haproxy": 18601, "nginx": 18602, "gslb": 18603, "gslb-full": 18604}
PROXY_CORE = "0"
LOAD_CORE = "1"


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        sys.exit(f"missing {' '.join(missing)}: apt-get install -y haproxy nginx wrk")


def wait_port(port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@contextmanager
def process(cmd: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def nginx_conf(tmp: Path, name: str, servers: str, upstream: str = "") -> Path:
    conf = tmp / f"nginx-{name}.conf"
    conf.write_text(
        f"""
worker_processes 1;
daemon off;
pid {tmp}/nginx-{conf.stem}.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  keepalive_requests 1000000;
  {upstream}
  {servers}
}}
"""
    )
    return conf


def backends_conf(tmp: Path, ports: tuple[int, ...] = BACKEND_PORTS) -> Path:
    servers = "\n".join(
        f'server {{ listen 127.0.0.1:{p}; location / {{ return 200 "backend {i}\\n"; }} }}'
        for i, p in enumerate(ports, 1)
    )
    return nginx_conf(tmp, "backends", servers)


def nginx_proxy_conf(tmp: Path) -> Path:
    members = " ".join(f"server 127.0.0.1:{p};" for p in BACKEND_PORTS)
    upstream = f"upstream app {{ {members} keepalive 64; keepalive_requests 1000000; }}"
    servers = f"""server {{
    listen 127.0.0.1:{PROXY_PORTS["nginx"]};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}"""
    return nginx_conf(tmp, "proxy", servers, upstream)


def haproxy_conf(
    tmp: Path, frontend: str = "", name: str = "haproxy", ports: tuple[int, ...] = BACKEND_PORTS
) -> Path:
    """HAProxy in front of the backends on `ports`; `frontend`: its bind (and other) lines,
    default a plain bind on its port."""
    conf = tmp / f"{name}.cfg"
    frontend = frontend or f"  bind 127.0.0.1:{PROXY_PORTS['haproxy']}\n"
    members = "\n".join(f"  server b{i} 127.0.0.1:{p}" for i, p in enumerate(ports, 1))
    conf.write_text(
        f"""global
  nbthread 1
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  option forwardfor
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend fe
{frontend}  default_backend app
backend app
  balance roundrobin
  http-reuse always
{members}
"""
    )
    return conf


# "gslb-full": every issue-14 feature switched on, so the figure is not that of a bare
# proxy: two routes ahead of the default (the bench's requests match none, so both are
# tried), an access log line per request written to a file, a connection cap and a
# per-backend cap with its queue.
FULL_FEATURES = """  max_connections: 10000
  queue_timeout: 5s
  access_log: {{path: "{log}", format: json}}
  routes:
    - {{host: api.example.com, path: /v2/, backends: [b1]}}
    - {{host: "*.static.example.com", backends: [b2]}}
"""


def gslb_config(tmp: Path, name: str = "gslb") -> Path:
    directory = tmp / name
    (directory / "regions").mkdir(parents=True)
    cap = ", max_connections: 1000" if name == "gslb-full" else ""
    members = "\n".join(
        f'    - {{name: b{i}, url: "http://127.0.0.1:{p}"{cap}}}'
        for i, p in enumerate(BACKEND_PORTS, 1)
    )
    features = FULL_FEATURES.format(log=tmp / "gslb-access.log") if name == "gslb-full" else ""
    (directory / "regions" / "bench.yaml").write_text(
        f"""region: bench
location: {{lat: 0, lon: 0}}
proxy:
  listen: 127.0.0.1:{PROXY_PORTS[name]}
  method: round_robin
{features}  backends:
{members}
"""
    )
    return directory


def proxy_command(name: str, tmp: Path) -> list[str]:
    pin = ["taskset", "-c", PROXY_CORE]
    if name == "haproxy":
        return [*pin, "haproxy", "-f", str(haproxy_conf(tmp)), "-db"]
    if name == "nginx":
        return [*pin, "nginx", "-c", str(nginx_proxy_conf(tmp)), "-p", str(tmp)]
    code = (
        "import sys; from gslb.proxy.app import main; "
        f"sys.exit(main({str(gslb_config(tmp, name))!r}, 'bench', None, None))"
    )
    return [*pin, sys.executable, "-P", "-c", code]  # -P: gslb from PYTHONPATH, not the cwd


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(name: str, text: str) -> Result:
    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not m:
            raise RuntimeError(f"no {pct}% latency in wrk output:\n{text}")
        return float(m.group(1)) * _UNITS[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not rps:
        raise RuntimeError(f"no Requests/sec in wrk output:\n{text}")
    errors = 0
    for m in re.finditer(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    ):
        errors += sum(int(g) for g in m.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    return Result(name, float(rps.group(1)), latency("50"), latency("99"), errors)


def wrk(port: int, connections: int, duration: float) -> str:
    cmd = [
        "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{round(duration)}s",
        "--latency", f"http://127.0.0.1:{port}/",
    ]  # fmt: skip
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def run(names: list[str], connections: int, duration: float, warmup: float) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="gslb-bench-") as t:
        tmp = Path(t)
        env_cmd = ["taskset", "-c", LOAD_CORE, "nginx", "-c", str(backends_conf(tmp)), "-p", t]
        with process(env_cmd, BACKEND_PORTS[0], tmp / "backends.log"):
            for name in names:
                port = PROXY_PORTS[name]
                with process(proxy_command(name, tmp), port, tmp / f"{name}.log"):
                    wrk(port, connections, warmup)
                    results.append(parse_wrk(name, wrk(port, connections, duration)))
    return results


def table(results: list[Result]) -> str:
    base = next((r for r in results if r.name == "haproxy"), None)
    lines = [
        "| proxy | req/s | p50 ms | p99 ms | req/s vs HAProxy | p99 vs HAProxy | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rps_ratio = f"{r.rps / base.rps:.2f}x" if base else "-"
        p99_ratio = f"{r.p99_ms / base.p99_ms:.2f}x" if base and base.p99_ms else "-"
        lines.append(
            f"| {r.name} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
            f"| {rps_ratio} | {p99_ratio} | {r.errors} |"
        )
    return "\n".join(lines)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """--duration, --warmup, --connections, --rounds: shared with bench/proxy/tls.py."""
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole set")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_arguments(parser)
    parser.add_argument(
        "--only",
        nargs="*",
        choices=list(PROXY_PORTS),
        default=["haproxy", "nginx", "gslb", "gslb-full"],
    )
    args = parser.parse_args()
    need("wrk", "haproxy", "nginx", "taskset")
    os.environ["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    rounds: list[list[Result]] = []
    for n in range(args.rounds):
        results = run(args.only, args.connections, args.duration, args.warmup)
        rounds.append(results)
        print(
            f"round {n + 1}: keep-alive, {args.connections} connections, round robin, "
            f"{args.duration:g}s, proxy on core {PROXY_CORE}, wrk + backends on core {LOAD_CORE}"
        )
        print(table(results))
        sys.stdout.flush()
    if len(rounds) > 1:
        print(f"median of {len(rounds)} rounds (each ratio taken within its own round):")
        print(median_table(rounds))
    return 0


def median_table(rounds: list[list[Result]]) -> str:
    lines = [
        "| proxy | req/s | p99 ms | req/s vs HAProxy | p99 vs HAProxy |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in [r.name for r in rounds[0]]:
        mine = [next(r for r in rs if r.name == name) for rs in rounds]
        base = [next((r for r in rs if r.name == "haproxy"), None) for rs in rounds]
        rps = statistics.median(r.rps for r in mine)
        p99 = statistics.median(r.p99_ms for r in mine)
        pairs = [(m, b) for m, b in zip(mine, base, strict=True) if b is not None]
        if pairs:
            ratio = statistics.median(m.rps / b.rps for m, b in pairs)
            p99_ratio = statistics.median(m.p99_ms / b.p99_ms for m, b in pairs)
            ratios = f"{ratio:.2f}x | {p99_ratio:.2f}x"
        else:
            ratios = "- | -"
        lines.append(f"| {name} | {rps:,.0f} | {p99:.2f} | {ratios} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
