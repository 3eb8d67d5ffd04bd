"""A flood from one /24 while 100 other clients query: what the others get, and whether
the flood is amplified.

`gslb serve` runs the sample zones with the shipped `dns.rate_limit` (20 replies/s per
account, window 5 s, slip 2) but loopback not exempt, so the flood is limited. 100 clients,
each from its own /24 of 127.0.0.0/8, ask at `--client-rate` q/s each (names and types
they would ask, all answered); the flood comes from four addresses of 127.99.0.0/24 at
`--flood-rate` q/s, one name. Every query is given `--timeout` seconds. Reported: the
share of the clients' queries answered, and the flood's bytes in and out (out includes
the empty TC=1 "slip" replies). `--no-rrl` runs the same without rate limiting.

    .venv/bin/python bench/dns/flood.py                        # flood at 10x one client
    .venv/bin/python bench/dns/flood.py --flood-rate 10000     # 10x all clients together
    .venv/bin/python bench/dns/flood.py --flood-rate 10000 --no-rrl
"""

from __future__ import annotations

import argparse
import multiprocessing
import select
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import dns.message  # noqa: E402

from bench.dns.gslb_process import sample_zones, start, stop  # noqa: E402

CLIENTS = 100
NAMES = (
    ("www.gslb.example.com", "A"),
    ("api.gslb.example.com", "AAAA"),
    ("gslb.example.com", "MX"),
)
SAMPLE_RRL = "rate_limit: {responses_per_second: 20, window: 5s, slip: 2, exempt: [127.0.0.0/8]}"


def _receive(socks: list[socket.socket], wait: float) -> tuple[int, int]:
    """(replies, bytes) read from the sockets that have any within `wait` seconds."""
    replies = size = 0
    for sock in select.select(socks, [], [], wait)[0]:
        while True:
            try:
                reply = sock.recv(65535)
            except BlockingIOError:
                break
            replies += 1
            size += len(reply)
    return replies, size


def flood(port: int, rate: float, seconds: float, counts: dict[str, int]) -> None:
    """Send `rate` q/s from four addresses of one /24 and count bytes both ways."""
    socks = []
    for host in range(1, 5):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.bind((f"127.99.0.{host}", 0))
        sock.setblocking(False)
        socks.append(sock)
    wire = dns.message.make_query("www.gslb.example.com", "A").to_wire()
    sent = received = bytes_in = bytes_out = 0
    started = time.perf_counter()
    end = started + seconds
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = int((now - started) * rate)
        while sent < due:
            try:
                socks[sent % 4].sendto(wire, ("127.0.0.1", port))
            except BlockingIOError:
                break
            sent += 1
            bytes_in += len(wire)
        replies, size = _receive(socks, 0.0005)
        received += replies
        bytes_out += size
    drain_until = time.perf_counter() + 1.0
    while time.perf_counter() < drain_until:
        replies, size = _receive(socks, 0.05)
        received += replies
        bytes_out += size
    counts.update(sent=sent, received=received, bytes_in=bytes_in, bytes_out=bytes_out)


def clients(port: int, rate: float, seconds: float, timeout: float) -> tuple[int, int]:
    """(asked, answered in time) for CLIENTS clients, each at `rate` q/s."""
    socks = []
    for i in range(CLIENTS):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((f"127.{10 + i // 200}.{i % 200}.1", 0))
        sock.setblocking(False)
        socks.append(sock)
    by_fd = {sock.fileno(): i for i, sock in enumerate(socks)}
    pending: dict[tuple[int, int], float] = {}  # (client, id) -> sent at
    asked = answered = 0
    total_rate = rate * CLIENTS
    started = time.perf_counter()
    end = started + seconds
    poller = select.poll()
    for sock in socks:
        poller.register(sock, select.POLLIN)
    while True:
        now = time.perf_counter()
        if now >= end and not pending:
            break
        if now < end:
            while asked < int((now - started) * total_rate):
                client = asked % CLIENTS
                name, rdtype = NAMES[asked % len(NAMES)]
                query = dns.message.make_query(name, rdtype, id=(asked // CLIENTS) & 0xFFFF)
                socks[client].sendto(query.to_wire(), ("127.0.0.1", port))
                pending[(client, query.id)] = now
                asked += 1
        for fd, _ in poller.poll(1):
            try:
                reply = socks[by_fd[fd]].recv(65535)
            except BlockingIOError:
                continue
            sent_at = pending.pop((by_fd[fd], int.from_bytes(reply[:2], "big")), None)
            in_time = sent_at is not None and time.perf_counter() - sent_at <= timeout
            if in_time and not reply[2] & 0x02:  # a slip (TC=1) is not an answer
                answered += 1
        now = time.perf_counter()
        for key in [key for key, at in pending.items() if now - at > timeout]:
            del pending[key]
    return asked, answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--client-rate", type=float, default=10.0, help="q/s per client")
    parser.add_argument("--flood-rate", type=float, default=100.0, help="q/s from the /24")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--no-rrl", action="store_true")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="gslb-bench-flood-"))
    limited = SAMPLE_RRL.replace("exempt: [127.0.0.0/8]", "exempt: []")
    zones = sample_zones(directory, changes={SAMPLE_RRL: "" if args.no_rrl else limited})
    process, port, _ = start(zones, directory / "serve.log")
    try:
        counts = multiprocessing.Manager().dict()
        flooder = multiprocessing.Process(
            target=flood, args=(port, args.flood_rate, args.seconds, counts)
        )
        flooder.start()
        asked, answered = clients(port, args.client_rate, args.seconds, args.timeout)
        flooder.join()
    finally:
        stop(process)
    print(
        f"rrl {'off' if args.no_rrl else 'on'}; {CLIENTS} clients at {args.client_rate:g} q/s "
        f"each, flood {args.flood_rate:g} q/s from one /24, {args.seconds:g} s"
    )
    print(
        f"clients: {answered:,} of {asked:,} answered within {args.timeout:g} s "
        f"({100 * answered / max(1, asked):.2f}%)"
    )
    print(
        f"flood: {counts['sent']:,} sent, {counts['received']:,} replies; bytes in "
        f"{counts['bytes_in']:,}, out {counts['bytes_out']:,} "
        f"(out/in {counts['bytes_out'] / max(1, counts['bytes_in']):.2f})"
    )


if __name__ == "__main__":
    main()
