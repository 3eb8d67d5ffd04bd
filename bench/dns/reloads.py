"""Queries lost while a 5,000-endpoint config is reloaded under `gslb serve --workers 2`.

A client asks at a steady rate (default 500 q/s, each query given 1 s) while the config is
changed and reloaded through the admin API every second; the script counts queries
without an answer and worker restarts.

    .venv/bin/python bench/dns/reloads.py                        # this checkout
    .venv/bin/python bench/dns/reloads.py --root /tmp/old        # another checkout of gslb

`--root` runs the `gslb` package of another checkout (e.g. `git worktree add /tmp/old
e9e88ca`) with this venv's Python, for a before/after comparison in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "bench-reloads"


def region(endpoints: int, generation: int) -> str:
    lines = ["region: eu-west", "location: {lat: 53.35, lon: -6.26}", "serves: {continents: [EU]}"]
    lines += ["services:", "  www.gslb.example.com:", "    - {address: 198.51.100.10}"]
    lines += ["  api.gslb.example.com:"]
    lines += [f'    - {{address: "2001:db8:e::{i:x}"}}' for i in range(1, endpoints + 1)]
    return "\n".join(lines) + f"\n# generation {generation}\n"


def api(port: int, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the gslb checkout to run")
    parser.add_argument("--endpoints", type=int, default=5000)
    parser.add_argument("--rate", type=int, default=500, help="queries per second")
    parser.add_argument("--reloads", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gslb-bench-reloads-"))
    zones = work / "zones"
    shutil.copytree(ROOT / "zones", zones)
    settings = zones / "gslb.yaml"
    text = settings.read_text().replace("../geodata/", str(ROOT / "geodata") + "/")
    settings.write_text(text.replace("../state.json", str(work / "state.json")))
    region_file = zones / "regions" / "eu-west.yaml"
    region_file.write_text(region(args.endpoints, 0))
    command = [sys.executable, "-m", "gslb", "serve", "--config", str(zones), "--workers", "2"]
    command += ["--dns", "127.0.0.1:0", "--api", "127.0.0.1:0"]
    env = {**os.environ, "GSLB_API_TOKEN": TOKEN, "PYTHONPATH": str(args.root)}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=work
    )
    assert process.stdout is not None
    dns_port = api_port = 0
    for line in process.stdout:
        words = line.split()
        if words[:1] == ["dns"] and not dns_port:
            dns_port = int(words[2])
        elif words[:1] == ["api"]:
            api_port = int(words[2])
        elif line.startswith("gslb serving"):
            break
    stop = threading.Event()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.settimeout(0.2)
    sent: set[int] = set()
    answered: set[int] = set()
    question = b"\x03ns1\x04gslb\x07example\x03com\x00\x00\x01\x00\x01"

    def ask() -> None:
        """Queries at a steady rate, not waiting for answers (IDs tell them apart)."""
        interval = 1.0 / args.rate
        next_at = time.monotonic()
        qid = 0
        while not stop.is_set():
            sock.sendto(
                struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question, ("127.0.0.1", dns_port)
            )
            sent.add(qid)
            qid = (qid + 1) % 65536
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def listen() -> None:
        while not stop.is_set() or len(answered) < len(sent):
            try:
                answered.add(int.from_bytes(sock.recv(4096)[:2], "big"))
            except TimeoutError:
                if stop.is_set():
                    return

    asker = threading.Thread(target=ask)
    listener = threading.Thread(target=listen)
    try:
        print(
            f"gslb from {args.root}, {args.endpoints:,} endpoints, python {sys.version.split()[0]}"
        )
        asker.start()
        listener.start()
        for generation in range(1, args.reloads + 1):
            region_file.write_text(region(args.endpoints, generation))
            api(api_port, "/v1/reload", method="POST")
            time.sleep(1.0)
        stop.set()
        asker.join()
        time.sleep(1.0)  # the last queries' time to be answered
        listener.join()
        restarts = api(api_port, "/v1/status")["dns_workers"]["restarts"]
        print(
            f"{args.reloads} reloads at {args.rate} q/s: {len(sent - answered):,} of "
            f"{len(sent):,} queries lost, {restarts} worker restarts"
        )
    finally:
        stop.set()
        process.terminate()
        process.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
