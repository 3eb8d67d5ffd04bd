"""Memory per idle client connection: `gslb proxy` against HAProxy, same run.

    .venv/bin/python bench/proxy/idle.py [--connections 10000]   # as root: raises the fd limit

Each proxy in turn (bench/proxy/run.py's backends and configs, the caps raised above
the count) gets `--connections` client connections, each of which sends one keep-alive
request, reads the answer and then stays open and silent (within the proxy's idle
timeout). The proxy's resident memory (VmRSS) is read after 100 such connections and
after all of them; the difference over the added connections is the memory per idle
connection. Every connection is checked still open (a request on it answered) at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    BACKEND_PORTS,
    LOAD_CORE,
    PROXY_PORTS,
    backends_conf,
    process,
    proxy_command,
)

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
BASELINE = 100


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def one_exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head[:40])


async def open_idle(
    port: int, count: int, into: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
) -> None:
    semaphore = asyncio.Semaphore(200)

    async def one() -> None:
        async with semaphore:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await one_exchange(reader, writer)
            into.append((reader, writer))

    await asyncio.gather(*(one() for _ in range(count)))


async def measure(pid: int, port: int, count: int) -> tuple[float, int]:
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    await open_idle(port, BASELINE, conns)
    await asyncio.sleep(1)
    before = rss_kib(pid)
    await open_idle(port, count - BASELINE, conns)
    await asyncio.sleep(1)
    after = rss_kib(pid)
    for reader, writer in conns[:: max(1, len(conns) // 500)]:  # still open: answered
        await one_exchange(reader, writer)
    for _, writer in conns:
        writer.close()
    return (after - before) * 1024 / (count - BASELINE), after


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--only", nargs="*", default=["haproxy", "gslb", "gslb-full"])
    args = parser.parse_args()
    # The descriptor limit, inherited by the proxies, as high as it may go. HAProxy
    # reserves two per connection (client and server side), so under a hard limit of
    # 20,000 it takes fewer connections than gslb: each proxy's count is printed.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="gslb-idle-") as t:
        tmp = Path(t)
        backends = ["taskset", "-c", LOAD_CORE, "nginx", "-c", str(backends_conf(tmp)), "-p", t]
        with process(backends, BACKEND_PORTS[0], tmp / "backends.log"):
            for name in args.only:
                command = proxy_command(name, tmp)
                count = raise_caps(tmp, name, args.connections, hard)
                with process(command, PROXY_PORTS[name], tmp / f"{name}.log") as proc:
                    per, total = asyncio.run(measure(proc.pid, PROXY_PORTS[name], count))
                    print(
                        f"{name}: {per:,.0f} bytes per idle connection"
                        f" ({count:,} connections, RSS {total / 1024:.1f} MiB)"
                    )
    return 0


def raise_caps(tmp: Path, name: str, count: int, descriptors: int) -> int:
    """The configs proxy_command wrote allow fewer connections than asked: raise them.
    Returns how many connections this proxy can take."""
    if name == "haproxy":
        maxconn = min(count + 1000, (descriptors - 100) // 2)
        conf = tmp / "haproxy.cfg"
        conf.write_text(conf.read_text().replace("maxconn 4096", f"maxconn {maxconn}"))
        return min(count, maxconn - 100)
    region = tmp / name / "regions" / "bench.yaml"
    text = region.read_text()
    if "max_connections: 10000" in text:
        text = text.replace("max_connections: 10000", f"max_connections: {count + 1000}")
    else:
        text = text.replace(
            "  method: round_robin\n", f"  method: round_robin\n  max_connections: {count + 1000}\n"
        )
    region.write_text(text)
    return count


if __name__ == "__main__":
    sys.exit(main())
