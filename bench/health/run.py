"""What health-checking 5,000 HTTP endpoints every 10 s costs: gslb.health's Scheduler + Prober.

    .venv/bin/python bench/health/run.py [--endpoints 5000] [--interval 10] [--seconds 40]

A separate process on core 1 serves `GET /health` (200, "ok") on port 18080 of 5,000
loopback addresses 127.0.x.y, one listening socket each. This process runs the checks on
core 0 under gslb.dns.loop.run (uvloop), exactly as `gslb serve` schedules them: one
Target per endpoint, a fresh connection per probe, at most 256 probes in flight. After the
first round (every target probed once), it measures for `--seconds`: probes per second,
this process's CPU time per wall second (user and system), probe latency, failures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from gslb.dns import loop  # noqa: E402
from gslb.health import CheckSpec, Health, Prober, ProbeResult, Scheduler, Target  # noqa: E402

PORT = 18080
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def addresses(count: int) -> list[str]:
    """127.0.1.1, 127.0.1.2, ...: loopback only, never 127.0.0.1 (other tests use it)."""
    return [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(count)]


# --- the endpoints' process ---------------------------------------------------------------


class Endpoint(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]
            self.transport.close()


async def serve_endpoints(count: int) -> None:
    running = asyncio.get_running_loop()
    servers = [
        await running.create_server(Endpoint, host, PORT, reuse_address=True, backlog=64)
        for host in addresses(count)
    ]
    print("ready", flush=True)
    await asyncio.Event().wait()
    for server in servers:
        server.close()


# --- the checker --------------------------------------------------------------------------


async def check(args: argparse.Namespace) -> None:
    spec = CheckSpec(kind="http", path="/health", port=PORT, interval=args.interval, timeout=2.0)
    targets = [Target(f"bench/{host}", spec, host) for host in addresses(args.endpoints)]
    latencies: list[float] = []
    failures: list[str] = []
    changes = 0

    def on_result(key: str, result: ProbeResult) -> None:
        latencies.append(result.latency)
        if not result.ok:
            failures.append(result.detail)

    def on_change(key: str, health: Health) -> None:
        nonlocal changes
        changes += 1

    async with Prober(limit=256) as prober:
        scheduler = Scheduler(prober, on_change, on_result=on_result)
        scheduler.set_targets(targets)
        await scheduler.start()
        # The first round: every target probed once (within about a second), then one
        # whole interval so the steady rate is reached.
        await asyncio.sleep(args.interval + 2)
        latencies.clear()
        failures.clear()
        before_cpu = resource.getrusage(resource.RUSAGE_SELF)
        before = time.monotonic()
        await asyncio.sleep(args.seconds)
        wall = time.monotonic() - before
        after_cpu = resource.getrusage(resource.RUSAGE_SELF)
        probes = len(latencies)
        healthy = sum(1 for h in scheduler.health().values() if h.up)
        await scheduler.stop()
    user = (after_cpu.ru_utime - before_cpu.ru_utime) / wall
    system = (after_cpu.ru_stime - before_cpu.ru_stime) / wall
    ordered = sorted(latencies) or [0.0]
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.endpoints:,} endpoints every {args.interval:g} s: {probes / wall:,.0f} probes/s "
        f"over {wall:.0f} s (expected {args.endpoints / args.interval:,.0f}); "
        f"CPU {user + system:.1%} of a core (user {user:.1%}, system {system:.1%}), "
        f"{(user + system) / max(probes / wall, 1) * 1e6:.0f} us per probe; latency p50 "
        f"{statistics.median(ordered) * 1000:.2f} ms, p99 "
        f"{ordered[int(0.99 * (len(ordered) - 1))] * 1000:.2f} ms; failures {len(failures)}"
        f"{' (' + failures[0] + ')' if failures else ''}; healthy {healthy:,}; "
        f"state changes {changes:,}; max RSS {rss_mib:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 3 * args.endpoints)), hard))
    if args.serve:
        os.sched_setaffinity(0, {1})
        loop.run(serve_endpoints(args.endpoints))
        return
    command = [sys.executable, __file__, "--serve", "--endpoints", str(args.endpoints)]
    endpoints = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert endpoints.stdout is not None
        if endpoints.stdout.readline().strip() != "ready":
            sys.exit("the endpoints' process did not start")
        os.sched_setaffinity(0, {0})
        loop.run(check(args))
    finally:
        endpoints.terminate()
        endpoints.wait()


if __name__ == "__main__":
    main()
