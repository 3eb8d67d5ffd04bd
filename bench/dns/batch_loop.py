"""The UDP batch loop alone (gslb/dns/mmsg.py): the C module against its ctypes twin.

Loopback UDP, a cached answer that returns a constant (so no answer engine is timed),
64 datagrams per batch; the client's own sends and receives are part of each run. Meant
to be counted with callgrind, which makes the figure independent of the machine's load:

    for use in none c py; do for n in 0 50; do
      valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/dns/batch_loop.py $use $n 2>&1 | grep Collected
    done; done

(instructions of 50 batches - of 0) / 3,200 is the cost per datagram; `none` only sends,
so c - none and py - none are the loop's (plus the client's receive).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

from gslb.dns import mmsg

QUERY, REPLY = bytes(40), bytes(120)


def bound() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def main() -> None:
    use, batches = sys.argv[1], int(sys.argv[2])
    server, client = bound(), bound()
    address = server.getsockname()
    batched = None
    if use != "none":
        batched = mmsg.BatchedUdp(
            server, lambda wire, peer, tcp: REPLY, lambda wire: REPLY, 4096, use=use
        )
    for _ in range(batches):
        for _ in range(mmsg.BATCH):
            client.sendto(QUERY, address)
        if batched is not None:
            batched.drain(1)
            for _ in range(mmsg.BATCH):
                client.recv(4096)


if __name__ == "__main__":
    main()
