"""The cost of a failover dry run (gslb/safety.py) on the sample zones: 2,000 client
networks (the most a dry run steers) placed by the demo GeoIP database, eu-west disabled.

    .venv/bin/python bench/dry_run.py
"""

from __future__ import annotations

import ipaddress
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gslb.config import load_config  # noqa: E402
from gslb.geo import open_geo  # noqa: E402
from gslb.plan import compile_plan  # noqa: E402
from gslb.safety import dry_run  # noqa: E402
from gslb.select.client import locate  # noqa: E402
from gslb.state import AdminState, State  # noqa: E402


def main() -> None:
    config = load_config(str(ROOT / "zones"))
    plan = compile_plan(config)
    geo = open_geo(str(ROOT / "geodata" / "demo-city.mmdb"))
    rng = random.Random(1)
    clients = [
        locate(ipaddress.IPv4Address(rng.getrandbits(24) << 8), 24, geo) for _ in range(2000)
    ]
    before = State()
    after = before.with_admin(AdminState().with_region("eu-west", "disabled"))
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        dry_run(plan, before, after, clients)
        runs.append(time.perf_counter() - started)
    print(f"dry run over {len(clients)} clients: best {min(runs) * 1000:.0f} ms of 5 runs")


if __name__ == "__main__":
    main()
