"""Response rate limiting (RRL) for UDP, with the semantics of BIND's and Knot's.

An authoritative server's UDP replies can be aimed at a victim by spoofing its address,
and one client can ask far more than a resolver would. RRL counts replies, not queries,
per *account*: the client's block of the source address (its /24 or /56 by default: not
the ECS subnet, which anyone can write) and the response's kind:

* an answer (or NODATA, or a referral): its question name and type;
* NXDOMAIN: the zone (the owner of the SOA the reply carries), so a flood of random
  names under one zone is one account;
* an error (REFUSED, FORMERR, SERVFAIL, ...): one account per client block.

Each account is a token bucket holding at most `responses_per_second * window` replies and
refilled at `responses_per_second`. A reply with no token left is not sent; every
`slip`-th of them goes out instead as an empty truncated reply (TC=1, the question only,
no larger than the query), so a real client behind a spoofed flood retries over TCP and
is answered there (TCP is never limited). `slip: 0` drops them all. Exempt networks are
never limited.

The table of accounts is bounded, and full it evicts as BIND's RRL does: the least
recently used account that is not being limited (it has a token now, so forgetting it
changes nothing it would be told). Accounts in debt are kept, so a flood of new (spoofed)
sources cannot reset a limited client's bucket; only when every one of the oldest
`EVICT_SCAN` accounts is in debt does the oldest go, since the bound must hold.

Pure: bytes and a clock in, a verdict out (gslb/dns/server.py and mmsg.py call it).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from itertools import islice
from typing import Protocol

from gslb.dns.layout import skip_name
from gslb.dns.peers import peer_address
from gslb.evicting import ClockCache
from gslb.model import RateLimitSettings

FLAG_TC = 0x02  # in the third byte of the header


class _Counted(Protocol):
    rate_limited: dict[str, int]


MAX_PEERS = 65_536  # source addresses remembered with their block (or exemption)
EVICT_SCAN = 64  # accounts, least recently used first, looked at for one not in debt
_EXEMPT = b""  # the memo's block of an exempt peer (a block is never empty)
KIND_ANSWER, KIND_NXDOMAIN, KIND_ERROR = b"a", b"n", b"e"


def _question_end(reply: bytes) -> int:
    """Offset past the reply's question (12 when it has none, or it cannot be read)."""
    if not reply[5]:  # QDCOUNT 0
        return 12
    end, _ = skip_name(reply, 12)
    return end + 4 if end > 0 else 12


def _name_at(wire: bytes, pos: int) -> bytes:
    """The name at `pos` in lower case, compression pointers followed (a few hops at most)."""
    out = bytearray()
    size = len(wire)
    for _ in range(128):
        if pos >= size:
            break
        length = wire[pos]
        if length == 0:
            break
        if length >= 0xC0:
            if pos + 1 >= size:
                break
            pos = ((length & 0x3F) << 8) | wire[pos + 1]
            continue
        out += wire[pos : pos + length + 1]
        pos += length + 1
    return bytes(out).lower()


def response_kind(reply: bytes) -> bytes:
    """The response kind part of an account key, read from the reply gslb wrote."""
    rcode = reply[3] & 0x0F
    qend = _question_end(reply)
    if rcode == 0:
        return KIND_ANSWER + reply[12:qend].lower()
    if rcode == 3:
        # The SOA's owner, the zone, is the first name after the question.
        return KIND_NXDOMAIN + _name_at(reply, qend)
    return KIND_ERROR


def truncated(reply: bytes) -> bytes:
    """The slip reply: the header with TC=1 and no records, and the question."""
    qend = _question_end(reply)
    question_count = 1 if qend > 12 else 0
    head = reply[:2] + bytes((reply[2] | FLAG_TC, reply[3]))
    return head + bytes((0, question_count, 0, 0, 0, 0, 0, 0)) + reply[12:qend]


class RateLimiter:
    """The accounts of one process (see the module docstring)."""

    def __init__(
        self,
        settings: RateLimitSettings,
        clock: Callable[[], float] = time.monotonic,
        counts: dict[str, int] | None = None,
        max_peers: int = MAX_PEERS,
    ) -> None:
        """`counts`: where limited replies are counted, by action ("drop", "slip")."""
        self.settings = settings
        self._clock = clock
        self._rate = settings.responses_per_second
        self._burst = settings.responses_per_second * settings.window
        # account -> [tokens, time of the last refill, replies limited so far], least
        # recently used first (each use moves it to the end)
        self._accounts: dict[bytes, list[float]] = {}
        # peer -> its block (_EXEMPT: exempt); a memo, so CLOCK eviction is enough
        self._blocks: ClockCache[str, bytes] = ClockCache(max_entries=max_peers)
        self.blocks_computed = 0  # memo misses
        self.counts = counts if counts is not None else {}

    @property
    def peers_cached(self) -> int:
        return len(self._blocks)

    def _block(self, peer: str) -> bytes | None:
        block = self._blocks.get(peer)
        if block is None:
            block = self._compute_block(peer)
            if block is None:
                return None
            self._blocks.put(peer, block)
        return block or None

    def _compute_block(self, peer: str) -> bytes | None:
        """The peer's block, _EXEMPT, or None when it is not an IP address."""
        self.blocks_computed += 1
        address = peer_address(peer)
        if address is None:
            return None
        settings = self.settings
        if any(address in network for network in settings.exempt):
            return _EXEMPT
        prefix = settings.ipv4_prefix if address.version == 4 else settings.ipv6_prefix
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        return network.network_address.packed

    def filter(self, peer: str, reply: bytes) -> bytes | None:
        """The reply to send to `peer`: `reply`, a truncated slip reply, or None (drop)."""
        block = self._block(peer)
        if block is None:
            return reply
        key = block + response_kind(reply)
        now = self._clock()
        accounts = self._accounts
        account = accounts.pop(key, None)
        if account is None:
            if len(accounts) >= self.settings.max_accounts:
                self._evict(now)
            accounts[key] = [self._burst - 1.0, now, 0.0]
            return reply
        accounts[key] = account  # now the most recently used
        tokens = min(self._burst, account[0] + (now - account[1]) * self._rate)
        account[1] = now
        if tokens >= 1.0:
            account[0] = tokens - 1.0
            return reply
        account[0] = tokens
        account[2] += 1
        slip = self.settings.slip
        if slip and int(account[2]) % slip == 0:
            self.counts["slip"] = self.counts.get("slip", 0) + 1
            return truncated(reply)
        self.counts["drop"] = self.counts.get("drop", 0) + 1
        return None

    def _evict(self, now: float) -> None:
        """Make room for one account (see the module docstring)."""
        accounts, rate = self._accounts, self._rate
        victim = None
        for key, account in islice(accounts.items(), EVICT_SCAN):
            if victim is None:
                victim = key  # the oldest: evicted if all those looked at are in debt
            if account[0] + (now - account[1]) * rate >= 1.0:
                victim = key
                break
        if victim is not None:
            del accounts[victim]

    def __len__(self) -> int:
        return len(self._accounts)


def rate_limit_filter(
    settings: RateLimitSettings | None, stats: _Counted
) -> Callable[[str, bytes], bytes | None] | None:
    """The UDP servers' `limit` for `dns.rate_limit` (None when it is off), counting into
    `stats.rate_limited`."""
    if settings is None:
        return None
    return RateLimiter(settings, counts=stats.rate_limited).filter
