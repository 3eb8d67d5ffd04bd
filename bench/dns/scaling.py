"""Queries/s of gslb.dns.workers.WorkerPool with 1 and N worker processes on one port.

    .venv/bin/python bench/dns/scaling.py [--workers 2] [--seconds 10]

The pool (what `gslb serve --workers N` runs) is started directly over the sample zones/
and the GeoLite2-City database, with the same query mix as bench/dns/run.py.
On a two-core machine there is no core left for the load generator, so the figure to read
is queries per CPU-second of the workers (from /proc), next to the raw queries/s: with
one worker, it and dnsperf each get a core; with N, they all share the machine. With
`--rate`, both pools get the same offered load, below one worker's capacity, and what to
compare is the CPU they spend on it (and how the kernel spread it over the workers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import queries as mix  # noqa: E402
from run import cpu_seconds, geolite2_path, stat  # noqa: E402

from gslb.config import load_config  # noqa: E402
from gslb.dns import loop  # noqa: E402
from gslb.dns.workers import WorkerPool, WorkerSpec  # noqa: E402
from gslb.model import HostPort  # noqa: E402
from gslb.plan import compile_plan  # noqa: E402
from gslb.state import State, View  # noqa: E402


async def measure(
    count: int, data: Path, db: str, seconds: float, rate: int | None
) -> tuple[float, list[float]]:
    """Queries/s and each worker's CPU (cores) over `seconds`, at full speed or `rate`."""
    view = View(compile_plan(load_config(str(ROOT / "zones"))), State())
    pool = WorkerPool(WorkerSpec(view, (HostPort("127.0.0.1", 0),), db), count)
    port = (await pool.start())[0].port
    pinned = count == 1
    try:
        if pinned:
            for pid in pool.pids():
                os.sched_setaffinity(pid, {0})
        base = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-B", "-d", str(data)]
        base += ["-c", "20", "-q", "400", "-t", "2"]
        if pinned:
            base = ["taskset", "-c", "1", *base]
        await asyncio.to_thread(subprocess.run, [*base, "-n", "1"], capture_output=True)
        # Warm up as bench/dns/run.py does: random answers get their fresh draws early on.
        await asyncio.to_thread(subprocess.run, [*base, "-l", "5"], capture_output=True)
        pids = pool.pids()
        cpu_before = [cpu_seconds(pid) for pid in pids]
        started = time.monotonic()
        limit = ["-Q", str(rate)] if rate else []
        done = await asyncio.to_thread(
            subprocess.run, [*base, "-l", str(seconds), *limit], capture_output=True, text=True
        )
        wall = time.monotonic() - started
        cpu = [
            (cpu_seconds(pid) - before) / wall for pid, before in zip(pids, cpu_before, strict=True)
        ]
        return stat(done.stdout, "Queries per second"), cpu
    finally:
        await pool.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--rate", type=int, default=0, help="q/s offered to both pools (default: full speed)"
    )
    args = parser.parse_args()
    db = geolite2_path()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "queries.bin"
        mix.write_stream(data, mix.queries(mix.client_networks(db, 5000), 200_000))
        for count in (1, args.workers):
            qps, cpus = loop.run(measure(count, data, db, args.seconds, args.rate or None))
            cpu = sum(cpus)
            print(
                f"{count} worker(s): {qps:,.0f} q/s, workers' CPU {cpu:.2f} cores "
                f"({' + '.join(f'{c:.2f}' for c in cpus)}), "
                f"{qps / max(cpu, 0.01):,.0f} q/s per worker core-second",
                flush=True,
            )


if __name__ == "__main__":
    main()
