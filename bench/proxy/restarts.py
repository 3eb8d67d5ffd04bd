"""SIGHUP and a restart (SIGTERM beside a new process) under wrk load: errors of any kind.

    .venv/bin/python bench/proxy/restarts.py [--duration 12] [--variant gslb-full]

The backends and the proxy config are bench/proxy/run.py's (nginx backends on core 1, the
proxy on core 0, `gslb-full`: routes, access log and caps on). While wrk runs keep-alive
load, the script, in order:

1. sends SIGHUP to the proxy (a reload of the same config), twice, a second apart;
2. starts a second `gslb proxy` on the same port (SO_REUSEPORT) and, once it listens,
   sends SIGTERM to the first, which drains (`Connection: close` on its next answers,
   idle connections closed after the grace) and exits; wrk's clients reconnect, to the
   new one;
3. sends SIGHUP to the new one.

Then it prints wrk's totals: requests, socket errors (connect, read, write, timeout) and
non-2xx answers; the zero-loss target is 0 of each. The first proxy's exit code and how
long its drain took are printed too.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    BACKEND_PORTS,
    LOAD_CORE,
    PROXY_PORTS,
    backends_conf,
    parse_wrk,
    process,
    proxy_command,
)


def wait_for_line(log: Path, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{log}: no {text!r} within {timeout}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=12.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--variant", choices=("gslb", "gslb-full"), default="gslb-full")
    args = parser.parse_args()
    port = PROXY_PORTS[args.variant]
    with tempfile.TemporaryDirectory(prefix="gslb-restarts-") as t:
        tmp = Path(t)
        backends = ["taskset", "-c", LOAD_CORE, "nginx", "-c", str(backends_conf(tmp)), "-p", t]
        with process(backends, BACKEND_PORTS[0], tmp / "backends.log"):
            command = proxy_command(args.variant, tmp)
            with process(command, port, tmp / "first.log") as first:
                wrk = subprocess.Popen(
                    ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{args.connections}",
                     f"-d{round(args.duration)}s", "--latency", f"http://127.0.0.1:{port}/"],
                    stdout=subprocess.PIPE,
                    text=True,
                )  # fmt: skip
                step = args.duration / 6
                time.sleep(step)
                first.send_signal(signal.SIGHUP)
                time.sleep(1)
                first.send_signal(signal.SIGHUP)
                time.sleep(step)
                second_log = tmp / "second.log"
                with second_log.open("wb") as out:
                    second = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
                try:
                    wait_for_line(second_log, "gslb proxy: region")
                    drain_started = time.monotonic()
                    first.send_signal(signal.SIGTERM)
                    first_exit = first.wait(60)
                    drain_seconds = time.monotonic() - drain_started
                    time.sleep(step)
                    second.send_signal(signal.SIGHUP)
                    output, _ = wrk.communicate(timeout=args.duration + 30)
                finally:
                    second.send_signal(signal.SIGTERM)
                    second.wait(30)
    result = parse_wrk(args.variant, output)
    errors = [line.strip() for line in output.splitlines() if "errors" in line or "Non-2xx" in line]
    total = next((line.strip() for line in output.splitlines() if "requests in" in line), "")
    print(f"{args.variant}: {total}; {result.rps:,.0f} req/s; p99 {result.p99_ms:.2f} ms")
    print(f"first proxy: exit {first_exit}, drained in {drain_seconds:.2f} s")
    print("errors: " + ("; ".join(errors) if errors else "none (no socket errors, no non-2xx)"))
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
