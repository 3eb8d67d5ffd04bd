"""Benchmark TLS termination: `gslb proxy` against HAProxy, both terminating TLS 1.3 with the
same certificate, in front of the same three plain-HTTP backends.

    apt-get install -y haproxy nginx wrk        # once; this script installs nothing
    .venv/bin/python bench/proxy/tls.py [--duration 10] [--connections 50] [--rounds 1]
    .venv/bin/python bench/proxy/tls.py --sighup 0.5     # reloads with new certificates
    .venv/bin/python bench/proxy/tls.py --idle 3000      # memory per idle connection

The layout is bench/proxy/run.py's (its helpers are used): each proxy alone on core 0, wrk
and the backends (one nginx worker, `return 200`) on core 1. Four modes: `plain` and
`plain-close` (the same proxy process's plain HTTP port, keep-alive and with `Connection:
close`: the references TLS costs are read against), `keep-alive` (wrk holds its TLS
connections: the cost of TLS records), and `close` (every request carries `Connection:
close`, so each one is a new TCP connection and a full TLS 1.3 handshake: wrk does not
resume sessions). The certificate is an ECDSA P-256 one made for the run,
`min_version` TLS 1.3 on both, ALPN http/1.1. Everything listens on 127.0.0.1 only.

Besides requests/s, each proxy's CPU time over the measured run (user and system, from
/proc) is divided by the requests it served: CPU µs per request, split into user space and
kernel, a figure that other load on the machine disturbs far less than requests/s does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from run import (
    LOAD_CORE,
    PROXY_CORE,
    REPO,
    Result,
    add_run_arguments,
    backends_conf,
    haproxy_conf,
    median_table,
    need,
    parse_wrk,
    process,
    table,
)

# Ports of their own (not run.py's), so that this bench and run.py can run side by side.
BACKEND_PORTS = (19111, 19112, 19113)
TLS_PORTS = {"haproxy": 18611, "gslb": 18613}
PLAIN_PORTS = {"haproxy": 18612, "gslb": 18614}  # the same proxy's plain port: the reference
TICK = os.sysconf("SC_CLK_TCK")
# plain*: the same process's plain port; *close: Connection: close (a connection per request)
MODES = ("plain", "plain-close", "keep-alive", "close")
NAME = "bench.example.test"


def make_certificate(tmp: Path) -> tuple[Path, Path, Path]:
    """A self-signed ECDSA P-256 certificate for NAME and 127.0.0.1: (cert, key, cert+key)."""
    cert, key, bundle = tmp / "bench.pem", tmp / "bench.key", tmp / "bench-haproxy.pem"
    cmd = [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-days", "2", "-subj", f"/CN={NAME}", "-keyout", str(key), "-out", str(cert),
        "-addext", f"subjectAltName=DNS:{NAME},IP:127.0.0.1",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    bundle.write_bytes(cert.read_bytes() + key.read_bytes())  # HAProxy's crt: both in one file
    return cert, key, bundle


def haproxy_frontend(bundle: Path) -> str:
    tls = f"ssl crt {bundle} ssl-min-ver TLSv1.3 alpn http/1.1"
    return f"""  bind 127.0.0.1:{TLS_PORTS["haproxy"]} {tls}
  bind 127.0.0.1:{PLAIN_PORTS["haproxy"]}
  http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
  http-request set-header X-Forwarded-Proto http unless {{ ssl_fc }}
"""


def gslb_config(tmp: Path, cert: Path, key: Path) -> Path:
    directory = tmp / "gslb-tls"
    (directory / "regions").mkdir(parents=True)
    members = "\n".join(
        f'    - {{name: b{i}, url: "http://127.0.0.1:{p}"}}' for i, p in enumerate(BACKEND_PORTS, 1)
    )
    (directory / "regions" / "bench.yaml").write_text(
        f"""region: bench
location: {{lat: 0, lon: 0}}
proxy:
  listen: 127.0.0.1:{PLAIN_PORTS["gslb"]}
  tls:
    listen: 127.0.0.1:{TLS_PORTS["gslb"]}
    certificates: [{{cert: "{cert}", key: "{key}"}}]
    min_version: "1.3"
  method: round_robin
  backends:
{members}
"""
    )
    return directory


def proxy_command(name: str, tmp: Path, files: tuple[Path, Path, Path]) -> list[str]:
    pin = ["taskset", "-c", PROXY_CORE]
    cert, key, bundle = files
    if name == "haproxy":
        conf = haproxy_conf(tmp, haproxy_frontend(bundle), "haproxy-tls", BACKEND_PORTS)
        return [*pin, "haproxy", "-f", str(conf), "-db"]
    code = (
        "import sys; from gslb.proxy.app import main; "
        f"sys.exit(main({str(gslb_config(tmp, cert, key))!r}, 'bench', None, None))"
    )
    return [*pin, sys.executable, "-c", code]


def wrk(name: str, mode: str, connections: int, duration: float) -> str:
    close = ["-H", "Connection: close"] if mode.endswith("close") else []
    if mode.startswith("plain"):
        url = f"http://127.0.0.1:{PLAIN_PORTS[name]}/"
    else:
        url = f"https://127.0.0.1:{TLS_PORTS[name]}/"
    cmd = [
        "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{round(duration)}s",
        "--latency", *close, url,
    ]  # fmt: skip
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@dataclass(frozen=True, slots=True)
class Cpu:
    """CPU time of a process, or per request: user and system (the kernel's, for it)."""

    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.user - other.user, self.system - other.system)

    def per(self, count: int) -> Cpu:
        """Microseconds each of `count` requests."""
        return Cpu(self.user / count * 1e6, self.system / count * 1e6)


def cpu_seconds(pid: int) -> Cpu:
    """The CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return Cpu(int(fields[11]) / TICK, int(fields[12]) / TICK)  # utime, stime (fields 14, 15)


def requests_served(text: str) -> int:
    found = re.search(r"(\d+) requests in", text)
    if not found:
        raise RuntimeError(f"no request count in wrk output:\n{text}")
    return int(found.group(1))


@contextmanager
def backends_up() -> Iterator[tuple[Path, tuple[Path, Path, Path]]]:
    """A scratch directory with the run's certificate, and the backends serving: (directory,
    (cert, key, cert+key))."""
    with tempfile.TemporaryDirectory(prefix="gslb-bench-tls-") as t:
        tmp = Path(t)
        files = make_certificate(tmp)
        backends = backends_conf(tmp, BACKEND_PORTS)
        command = ["taskset", "-c", LOAD_CORE, "nginx", "-c", str(backends), "-p", t]
        with process(command, BACKEND_PORTS[0], tmp / "backends.log"):
            yield tmp, files


def run(
    names: list[str],
    modes: list[str],
    connections: int,
    duration: float,
    warmup: float,
    cpu: dict[tuple[str, str], list[Cpu]],
) -> dict[str, list[Result]]:
    """One round; `cpu[(mode, name)]` gets each run's CPU µs per request."""
    results: dict[str, list[Result]] = {mode: [] for mode in modes}
    with backends_up() as (tmp, files):
        for name in names:
            port = TLS_PORTS[name]
            with process(proxy_command(name, tmp, files), port, tmp / f"{name}.log") as proc:
                for mode in modes:
                    wrk(name, mode, connections, warmup)
                    before = cpu_seconds(proc.pid)
                    text = wrk(name, mode, connections, duration)
                    used = cpu_seconds(proc.pid) - before
                    results[mode].append(parse_wrk(name, text))
                    for line in text.splitlines():  # what kind of errors, if any
                        if "Socket errors" in line or "Non-2xx" in line:
                            print(f"{name}, {mode}: wrk says: {line.strip()}")
                    served = max(1, requests_served(text))
                    cpu.setdefault((mode, name), []).append(used.per(served))
    return results


def renew(
    stop: threading.Event,
    every: float,
    files: tuple[Path, Path, Path],
    proc: subprocess.Popen[bytes],
    sent: list[float],
) -> None:
    """Until `stop`: every `every` seconds a new certificate and key moved over the old
    files (as a renewal does), then SIGHUP to `proc`; `sent` gets the time of each."""
    spare = files[0].parent / "next"
    spare.mkdir(exist_ok=True)
    while not stop.wait(every):
        cert, key, _ = make_certificate(spare)
        os.replace(key, files[1])
        os.replace(cert, files[0])
        proc.send_signal(signal.SIGHUP)
        sent.append(time.monotonic())


def sighup_run(connections: int, duration: float, warmup: float, every: float) -> None:
    """gslb alone under wrk (TLS keep-alive, then close) while its certificate is renewed in
    place and SIGHUP sent every `every` seconds: errors are what a client would see."""
    with backends_up() as (tmp, files):
        log = tmp / "gslb.log"
        with process(proxy_command("gslb", tmp, files), TLS_PORTS["gslb"], log) as proc:
            for mode in ("keep-alive", "close"):
                wrk("gslb", mode, connections, warmup)
                stop = threading.Event()
                sent: list[float] = []
                renewer = threading.Thread(target=renew, args=(stop, every, files, proc, sent))
                renewer.start()
                try:
                    text = wrk("gslb", mode, connections, duration)
                finally:
                    stop.set()
                    renewer.join()
                print(
                    f"TLS 1.3, {mode}, {connections} connections, {duration:g}s, a new "
                    f"certificate and SIGHUP every {every:g}s ({len(sent)} reloads)"
                )
                print(table([parse_wrk("gslb", text)]))
                sys.stdout.flush()
        logged = log.read_text()
        applied, refused = logged.count("proxy reloaded"), logged.count("reload refused")
        print(f"gslb log: {applied} reloads applied, {refused} refused")


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found
    return int(found.group(1))


async def hold_idle(port: int, context: ssl.SSLContext | None, n: int) -> list[Any]:
    """`n` connections to `port` (TLS with `context`), every 100th after one request (so
    that the backend pool is warm), all left idle; their writers."""
    writers = []
    for i in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        if i % 100 == 0:
            writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            await reader.readuntil(b"\r\n\r\n")
        writers.append(writer)
    return writers


async def idle_run(names: list[str], n: int) -> None:
    """RSS per idle connection of each proxy, plain then TLS (handshake done)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the bench's own certificate; nothing to verify
    with backends_up() as (tmp, files):
        for name in names:
            command = proxy_command(name, tmp, files)
            with process(command, TLS_PORTS[name], tmp / f"{name}.log") as proc:
                for kind, port, ctx in (
                    ("plain", PLAIN_PORTS[name], None),
                    ("TLS 1.3", TLS_PORTS[name], context),
                ):
                    before = rss_kib(proc.pid)
                    writers = await hold_idle(port, ctx, n)
                    await asyncio.sleep(0.5)  # the last ones are accepted and set up
                    each = (rss_kib(proc.pid) - before) * 1024 / n
                    print(f"{name}, {kind}: {n} idle connections, {each:,.0f} bytes each")
                    for writer in writers:
                        writer.close()
                    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_arguments(parser)
    parser.add_argument("--modes", nargs="*", choices=MODES, default=list(MODES))
    parser.add_argument("--only", nargs="*", choices=list(TLS_PORTS), default=list(TLS_PORTS))
    parser.add_argument(
        "--sighup",
        type=float,
        metavar="SECONDS",
        help="instead: gslb alone, a new certificate and SIGHUP every SECONDS under load",
    )
    parser.add_argument(
        "--idle",
        type=int,
        metavar="N",
        help="instead: memory (RSS) per idle connection, N plain then N TLS, each proxy",
    )
    args = parser.parse_args()
    need("wrk", "haproxy", "nginx", "taskset", "openssl")
    os.environ["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    if args.idle:
        os.sched_setaffinity(0, {int(LOAD_CORE)})  # the clients: beside wrk's core
        asyncio.run(idle_run(args.only, args.idle))
        return 0
    if args.sighup:
        sighup_run(args.connections, args.duration, args.warmup, args.sighup)
        return 0
    rounds: dict[str, list[list[Result]]] = {mode: [] for mode in args.modes}
    cpu: dict[tuple[str, str], list[Cpu]] = {}
    for n in range(args.rounds):
        results = run(args.only, args.modes, args.connections, args.duration, args.warmup, cpu)
        for mode, rows in results.items():
            rounds[mode].append(rows)
            print(
                f"round {n + 1}: {'plain HTTP' if mode.startswith('plain') else 'TLS 1.3'}, "
                f"{mode}, "
                f"{args.connections} connections, "
                f"{args.duration:g}s, proxy on core {PROXY_CORE}, wrk + backends on core "
                f"{LOAD_CORE}"
            )
            print(table(rows))
            print(cpu_line(mode, [r.name for r in rows], cpu, n))
        sys.stdout.flush()
    if args.rounds > 1:
        for mode, rows in rounds.items():
            print(f"{mode}: median of {args.rounds} rounds (each ratio within its own round):")
            print(median_table(rows))
            for name in [r.name for r in rows[0]]:
                runs = cpu[(mode, name)]
                user = statistics.median(c.user for c in runs)
                system = statistics.median(c.system for c in runs)
                total = statistics.median(c.total for c in runs)
                print(
                    f"median CPU µs/request, {name}: {total:.1f} "
                    f"(user {user:.1f}, system {system:.1f})"
                )
    return 0


def cpu_line(mode: str, names: list[str], cpu: dict[tuple[str, str], list[Cpu]], n: int) -> str:
    """This round's CPU µs per request of each proxy (user + system), and the ratio of each
    one's total to HAProxy's."""
    mine = {name: cpu[(mode, name)][n] for name in names}
    base = mine.get("haproxy")
    parts = []
    for name, c in mine.items():
        ratio = f", {c.total / base.total:.2f}x HAProxy" if base and name != "haproxy" else ""
        parts.append(f"{name} {c.total:.1f} (user {c.user:.1f}, system {c.system:.1f}{ratio})")
    return "CPU µs/request: " + "; ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
