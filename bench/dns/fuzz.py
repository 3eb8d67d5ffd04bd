"""The long fuzz run: a million mutated queries (tests/dns_fuzz.py's seeded corpus) against
`gslb serve`, alone and with `--workers 2`, cookies and an identity on.

Each window of 63 packets is followed by a valid query from another socket, sent while the
server is stopped (SIGSTOP) so they are read in one batch; the script reports windows whose
valid query went unanswered, replies dnspython cannot parse, tracebacks and log lines.

    .venv/bin/python bench/dns/fuzz.py                     # 1,000,000 packets, both modes
    .venv/bin/python bench/dns/fuzz.py --packets 100000 --workers 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.dns.gslb_process import start, stop  # noqa: E402
from tests.dns_fuzz import corpus, run  # noqa: E402  (the suite's corpus, shared)
from tests.test_dns_fuzz import REGION, SETTINGS, ZONE  # noqa: E402


def children(pid: int) -> tuple[int, ...]:
    """The worker processes of `gslb serve --workers N` (its children)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return tuple(found)


def one_run(packets: int, workers: int, seed: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="gslb-bench-fuzz-"))
    (directory / "regions").mkdir()
    (directory / "gslb.yaml").write_text(SETTINGS)
    (directory / "gslb.example.com.yaml").write_text(ZONE)
    (directory / "regions/r1.yaml").write_text(REGION)
    log = directory / "serve.log"
    process, port, _ = start(directory, log, "--workers", str(workers))
    try:
        pids = (process.pid,) if workers == 1 else children(process.pid)
        outcome = run("127.0.0.1", port, corpus(seed, packets), pause_pids=pids, settle=0.005)
        alive = process.poll() is None
    finally:
        stop(process)
    text = log.read_text()
    print(
        f"workers {workers}: {outcome.sent:,} packets in {outcome.seconds:.0f} s, "
        f"{outcome.replies:,} replies, {len(outcome.unparsable)} unparsable, "
        f"{outcome.valid_missed} of {outcome.windows:,} valid queries missed, "
        f"{text.count('Traceback')} tracebacks, {len(text.splitlines())} log lines, "
        f"server {'alive' if alive else 'DEAD'}",
        flush=True,
    )
    for wire in outcome.unparsable[:5]:
        print(f"  unparsable reply: {wire.hex()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, action="append", help="default: 1 and 2")
    parser.add_argument("--seed", type=int, default=20261203)
    args = parser.parse_args()
    os.environ.setdefault("GSLB_FUZZ_COOKIE", "00112233445566778899aabbccddeeff")
    started = time.perf_counter()
    for workers in args.workers or [1, 2]:
        one_run(args.packets, workers, args.seed)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
