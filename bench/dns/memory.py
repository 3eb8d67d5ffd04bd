"""RSS of `gslb serve` under a stream of distinct names, then of distinct ECS networks.

Every table the query path fills is bounded (gslb/dns/answers.py); this shows the bound
holds in a real process: RSS is sampled every 100,000 queries and must level off. Default
settings (`dns.cache_entries` 100,000), the sample zones, and the GeoLite2-City database
when `maxminddb-geolite2` is installed (else the small demo database, which places few
networks and so understates the GeoIP cache).

    .venv/bin/python bench/dns/memory.py                      # 1,000,000 of each
    .venv/bin/python bench/dns/memory.py --queries 200000     # quicker

The sender is this process (Python, one UDP socket, a window of queries in flight), so it
runs at a few tens of thousands of queries/s: a million of each takes a few minutes.
"""

from __future__ import annotations

import argparse
import os
import random
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ZONE_NAME = b"\x04gslb\x07example\x03com\x00"
WINDOW = 256  # queries in flight


def geo_database() -> Path:
    try:
        import geolite2  # type: ignore[import-not-found]

        path = Path(geolite2.__file__).parent / "_maxminddb_geolite2" / "GeoLite2-City.mmdb"
        if path.exists():
            return path
    except ImportError:
        pass
    return ROOT / "geodata" / "demo-city.mmdb"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def label(text: str) -> bytes:
    return bytes([len(text)]) + text.encode()


def name_query(i: int, rng: random.Random) -> bytes:
    """A for a distinct name under the zone (each one NXDOMAIN), no EDNS."""
    head = struct.pack("!HHHHHH", rng.randrange(65536), 0x0100, 1, 0, 0, 0)
    return head + label(f"n{i}") + ZONE_NAME + b"\x00\x01\x00\x01"


def ecs_query(i: int, rng: random.Random) -> bytes:
    """A for the steered name with ECS from a distinct /24 (public unicast space)."""
    first = 1 + i // 65536 % 222
    network = bytes((first, (i >> 8) & 0xFF, i & 0xFF))
    option = struct.pack("!HHHBB", 8, 7, 1, 24, 0) + network
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, len(option)) + option
    head = struct.pack("!HHHHHH", rng.randrange(65536), 0x0100, 1, 0, 0, 1)
    return head + label("www") + ZONE_NAME + b"\x00\x01\x00\x01" + opt


def drive(port: int, pid: int, total: int, make: Callable[[int, random.Random], bytes]) -> None:
    rng = random.Random(1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setblocking(False)
    sent = answered = 0
    try:
        while sent < total:
            while sent < total and sent - answered < WINDOW:
                sock.sendto(make(sent, rng), ("127.0.0.1", port))
                sent += 1
                if sent % 100_000 == 0:
                    print(
                        f"  {sent:>9,} sent  {answered:>9,} answered  RSS {rss_mib(pid):6.1f} MiB"
                    )
            if not select.select([sock], [], [], 0.5)[0]:
                answered = sent  # lost in flight: go on
                continue
            while True:
                try:
                    sock.recv(4096)
                    answered += 1
                except BlockingIOError:
                    break
    finally:
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=1_000_000)
    args = parser.parse_args()
    db = geo_database()
    work = Path(tempfile.mkdtemp(prefix="gslb-bench-memory-"))
    try:
        zones = work / "zones"
        shutil.copytree(ROOT / "zones", zones)
        settings = zones / "gslb.yaml"
        text = settings.read_text().replace("../geodata/demo-city.mmdb", str(db))
        settings.write_text(text.replace("../state.json", str(work / "state.json")))
        command = [sys.executable, "-m", "gslb", "serve", "--config", str(zones)]
        command += ["--dns", "127.0.0.1:0", "--api", "127.0.0.1:0"]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT
        )
        assert process.stdout is not None
        port = 0
        for line in process.stdout:
            if line.startswith("dns ") and not port:
                port = int(line.split()[2])
            if line.startswith("gslb serving"):
                break
        try:
            print(f"python {sys.version.split()[0]}, database {db.name}, {os.cpu_count()} CPUs")
            print(f"after start: RSS {rss_mib(process.pid):.1f} MiB")
            print(f"{args.queries:,} distinct names:")
            drive(port, process.pid, args.queries, name_query)
            print(f"{args.queries:,} distinct ECS /24s:")
            drive(port, process.pid, args.queries, ecs_query)
            print(f"at the end: RSS {rss_mib(process.pid):.1f} MiB")
        finally:
            process.terminate()
            process.wait(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
