"""The Python cost of one proxied request, without sockets: µs of CPU per request.

    .venv/bin/python bench/proxy/micro.py [--requests 100000] [--variant gslb-full]
    .venv/bin/python bench/proxy/micro.py --reference /path/to/other/checkout  # A/B
    .venv/bin/python bench/proxy/micro.py --profile            # cProfile, top functions

A `gslb proxy` of the bench's config (bench/proxy/run.py: `gslb`, or `gslb-full` with routes,
access log and caps) is started in-process, but its client connection and its pooled backend
connections get stub transports: each request is wrk's (`GET /`, one Host header), fed to
`ClientConnection.data_received`; the head the proxy writes to a backend is answered with
nginx's `return 200` response, fed to that `UpstreamConnection.data_received`. So everything
the proxy does in Python per request runs (parse, route, balance, rewrite both heads, log,
count), and no system call does. The figure is CPU time (time.process_time, the access log's
writer thread included) per request, the best of `--rounds`: other work on the machine
hardly moves it, unlike wall-clock figures. With `--reference DIR` the same runs for
another checkout's code (a subprocess with PYTHONPATH=DIR), alternating, in the same run;
each run is pinned to core 0 (taskset), with its access log thread.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:18604\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 04 Dec 2026 18:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\n"
    b"backend 1\n"
)


class StubTransport:
    """Takes writes and remembers which backend connection was written to last."""

    def __init__(self, protocol: Any, wrote: list[Any], peer: tuple[str, int]) -> None:
        self._protocol = protocol
        self._wrote = wrote
        self._peer = peer
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self._wrote.append(self._protocol)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._peer if name == "peername" else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool:
        return False


async def measure(config: Path, requests: int, rounds: int, profile: Path | None) -> float:
    from gslb.config import load_config
    from gslb.model import HostPort
    from gslb.proxy.app import region_proxy
    from gslb.proxy.frontend import ClientConnection
    from gslb.proxy.server import ProxyServer
    from gslb.proxy.upstream import UpstreamConnection

    spec = region_proxy(load_config(str(config)), "bench")
    server = ProxyServer(spec, listen=HostPort("127.0.0.1", 0))
    await server.start()
    shared = server._shared
    assert shared is not None
    wrote: list[Any] = []  # backend connections a request head went to
    for state in shared.snapshot.table.backends:
        for _ in range(2):
            conn = UpstreamConnection(shared.pool, state, shared.stats)
            conn.connection_made(StubTransport(conn, wrote, ("127.0.0.1", 1)))  # type: ignore[arg-type]
            shared.pool.release(conn)
    client = ClientConnection(shared)
    client_wrote: list[Any] = []
    client.connection_made(StubTransport(None, client_wrote, ("192.0.2.10", 40000)))  # type: ignore[arg-type]

    def one_round() -> float:
        start = time.process_time()
        for _ in range(requests):
            client.data_received(REQUEST)
            wrote.pop().data_received(RESPONSE)
        client_wrote.clear()
        return (time.process_time() - start) / requests * 1e6

    one_round()  # warm-up
    profiler = cProfile.Profile() if profile is not None else None
    if profiler is not None:
        profiler.enable()
    best = min(one_round() for _ in range(rounds))
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(profile))
    answered = sum(n for (_, status), n in shared.stats.requests.items() if status == 200)
    assert answered >= requests * (rounds + 1), f"only {answered} requests answered 200"
    await server.close()
    return best


def run_here(variant: str, requests: int, rounds: int, profile: Path | None) -> float:
    import uvloop

    import gslb

    print(f"gslb from {Path(gslb.__file__).parent.parent}", file=sys.stderr)

    sys.path.append(str(ROOT))  # after PYTHONPATH: gslb is the code measured
    from bench.proxy.run import gslb_config

    with tempfile.TemporaryDirectory(prefix="gslb-micro-") as t:
        config = gslb_config(Path(t), variant)
        result: float = uvloop.run(measure(config, requests, rounds, profile))
        return result


def run_there(code: Path, variant: str, requests: int, rounds: int) -> float:
    """The same in a subprocess importing gslb from `code` (this script's bench helpers)."""
    env = dict(os.environ, PYTHONPATH=str(code))
    # On one core, as the real proxy runs (its access log thread shares the core too).
    cmd = ["taskset", "-c", "0", sys.executable, "-P", __file__, "--variant", variant,
           "--requests", str(requests), "--rounds", str(rounds), "--bare"]  # fmt: skip
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", choices=["gslb", "gslb-full"], default="gslb-full")
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5, help="best of this many")
    parser.add_argument("--repeat", type=int, default=3, help="alternations with --reference")
    parser.add_argument("--reference", type=Path, help="another checkout to compare with")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        print(run_here(args.variant, args.requests, args.rounds, None))
        return 0
    if args.profile:
        with tempfile.TemporaryDirectory() as t:
            prof = Path(t) / "micro.prof"
            us = run_here(args.variant, args.requests, args.rounds, prof)
            print(f"{args.variant}: {us:.2f} µs per request (under cProfile)")
            pstats.Stats(str(prof)).sort_stats("tottime").print_stats(30)
        return 0
    codes = [ROOT] + ([args.reference.resolve()] if args.reference else [])
    for n in range(args.repeat if args.reference else 1):
        for code in codes:
            us = run_there(code, args.variant, args.requests, args.rounds)
            print(f"{n + 1} {code.name:>12} {args.variant}: {us:.2f} µs of CPU per request")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
