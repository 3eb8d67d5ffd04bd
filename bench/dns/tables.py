"""Memory of the query path's per-client tables when full: RRL accounts and peers, and the
DNS cookie memos, measured with tracemalloc (docs/performance.md quotes the figures).

    .venv/bin/python bench/dns/tables.py
"""

from __future__ import annotations

import os
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import dns.message

from gslb.dns.cookies import MEMO_SIZE, ServerCookies
from gslb.dns.rrl import MAX_PEERS, RateLimiter
from gslb.model import RateLimitSettings


def measure(label: str, count: int, fill: Callable[[], object]) -> None:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = fill()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    size = after - before
    print(f"{label}: {size / 2**20:.1f} MiB for {count:,} ({size / count:.0f} bytes each)")
    del kept


def rrl_full() -> RateLimiter:
    settings = RateLimitSettings(exempt=())
    limiter = RateLimiter(settings)
    reply = dns.message.make_response(dns.message.make_query("www.gslb.example.com", "A"))
    wire = reply.to_wire()
    for i in range(settings.max_accounts):
        # A new client block per reply: one account and one peer each (peers stop at 65,536).
        limiter.filter(f"{10 + (i >> 16)}.{i >> 8 & 255}.{i & 255}.1", wire)
    return limiter


def cookies_full() -> ServerCookies:
    cookies = ServerCookies([os.urandom(16)])
    for i in range(MEMO_SIZE - 1):
        client = i.to_bytes(8, "big")
        option, _ = cookies.answer(client, bytes((10, 0, i >> 8 & 255, i & 255)))
        cookies.answer(option, bytes((10, 0, i >> 8 & 255, i & 255)))  # a verdict too
    return cookies


def main() -> None:
    accounts = RateLimitSettings().max_accounts
    measure(f"RRL, {accounts:,} accounts and {MAX_PEERS:,} peers", accounts, rrl_full)
    measure(f"cookies, {MEMO_SIZE - 1:,} made and checked", MEMO_SIZE - 1, cookies_full)


if __name__ == "__main__":
    main()
