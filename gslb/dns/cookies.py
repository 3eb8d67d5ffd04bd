"""DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018).

A client sends an 8-byte client cookie; the server answers with it and a server cookie
that only the server's secret can make, bound to the client's address. A client that sends
that server cookie back proves it receives what is sent to its address: it is no spoofed
source, so response rate limiting spares it. Every node of a cluster makes and checks the
same cookies when they share the secret (RFC 9018 is the same construction in BIND, Knot,
PowerDNS and Unbound), so a resolver moving between nodes keeps its standing.

The server cookie (16 bytes): version 1, three reserved bytes, a 32-bit timestamp (serial
arithmetic, RFC 1982), and SipHash-2-4(client cookie | version | reserved | timestamp |
client address) under the 16-byte secret. It is valid for an hour (and up to five minutes
from the future, for clocks a little apart); one older than half an hour is replaced by a
fresh one in the reply.

Pure: bytes and a clock in, verdicts out (gslb/dns/server_options.py puts them on the wire).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from gslb.evicting import ClockCache
from gslb.siphash import siphash24

COOKIE_CODE = 10  # the EDNS option
VERSION = 1
CLIENT_SIZE = 8
SERVER_SIZE = 16  # the RFC 9018 form
MAX_AGE = 3600  # seconds a server cookie is accepted
RENEW_AFTER = 1800  # older than this, the reply carries a fresh one
MAX_AHEAD = 300  # a cookie stamped this far in the future is still accepted
SECRET_SIZE = 16
MEMO_SIZE = 65_536  # verdicts and cookies remembered each, evicted one at a time (CLOCK)


def well_formed(data: bytes) -> bool:
    """Whether a COOKIE option's data has a length RFC 7873 §5.2.2 allows (else FORMERR):
    the client cookie alone, or with a server cookie of 8 to 32 bytes."""
    size = len(data)
    return size == CLIENT_SIZE or 16 <= size <= 40


def parse_secrets(text: str) -> tuple[bytes, ...]:
    """Secrets from `dns.cookies.secret_env`'s variable: 32 hex digits each, comma-separated.

    The first makes new cookies; every one is accepted (a rollover: add the new secret
    first on every node, wait an hour, then drop the old one)."""
    secrets = []
    for part in text.split(","):
        part = part.strip()
        try:
            secret = bytes.fromhex(part)
        except ValueError:
            secret = b""
        if len(secret) != SECRET_SIZE:
            raise ValueError(
                "a cookie secret is 32 hex digits (16 bytes); several: comma-separated"
            )
        secrets.append(secret)
    return tuple(secrets)


def _age(stamp: int, now: int) -> int:
    """Seconds from `stamp` to `now` in serial number arithmetic (negative: in the future)."""
    delta = (now - stamp) & 0xFFFFFFFF
    return delta - (1 << 32) if delta >= 1 << 31 else delta


class ServerCookies:
    """Makes and checks server cookies under the secrets of one node (see the module doc)."""

    def __init__(
        self,
        secrets: Sequence[bytes],
        clock: Callable[[], float] = time.time,
        memo_size: int = MEMO_SIZE,
    ) -> None:
        if not secrets or any(len(secret) != SECRET_SIZE for secret in secrets):
            raise ValueError("cookie secrets are 16 bytes each, at least one")
        self._secrets = tuple(secrets)
        self._clock = clock
        # (client cookie + address) -> a server cookie made for them; (whole option +
        # address) -> which secret made its server cookie. A resolver sends the same cookies
        # for many queries, so most queries with a cookie cost a dict lookup, not a hash.
        # CLOCK eviction: a burst of new (or spoofed) clients does not evict the regulars.
        self._made: ClockCache[bytes, bytes] = ClockCache(max_entries=memo_size)
        # -> the secret's index; -1: not ours
        self._checked: ClockCache[bytes, int] = ClockCache(max_entries=memo_size)

    def memo_sizes(self) -> tuple[int, int]:
        """Entries remembered now: (cookies made, verdicts)."""
        return len(self._made), len(self._checked)

    def make(self, client: bytes, address: bytes, stamp: int, secret: bytes | None = None) -> bytes:
        """The server cookie for `client` at `address` stamped `stamp` (RFC 9018 §4)."""
        head = bytes((VERSION, 0, 0, 0)) + (stamp & 0xFFFFFFFF).to_bytes(4, "big")
        return head + siphash24(secret or self._secrets[0], client + head + address)

    def valid(self, client: bytes, server: bytes, address: bytes, now: int) -> bool:
        """Whether `server` is a cookie of ours for `client` at `address`, still in date."""
        return self._secret_of(client, server, address, now) is not None

    def _secret_of(self, client: bytes, server: bytes, address: bytes, now: int) -> int | None:
        """The index of the secret that made `server`, if it is ours and in date."""
        if len(server) != SERVER_SIZE or server[0] != VERSION:
            return None
        age = _age(int.from_bytes(server[4:8], "big"), now)
        if age > MAX_AGE or age < -MAX_AHEAD:
            return None
        # The reserved bytes are hashed as sent (RFC 9018 §4.2): a cookie is checked as is.
        message = client + server[:8] + address
        for index, secret in enumerate(self._secrets):
            if siphash24(secret, message) == server[8:]:
                return index
        return None

    def answer(self, option: bytes, address: bytes) -> tuple[bytes, bool]:
        """For a well-formed COOKIE option from `address`: (the option data to send back,
        whether the client sent a valid server cookie of ours).

        A valid cookie comes back as it came while it is young and was made with the
        current secret; else the reply carries a fresh one (RFC 9018 §4.3 and A.4).
        """
        now = int(self._clock())
        client = option[:CLIENT_SIZE]
        server = option[CLIENT_SIZE:]
        if not server:
            return client + self._fresh(client, address, now), False
        key = option + address
        made_by = self._checked.get(key)
        if made_by is None:
            index = self._secret_of(client, server, address, now)
            made_by = -1 if index is None else index
            self._checked.put(key, made_by)
        if made_by < 0:
            return client + self._fresh(client, address, now), False
        age = _age(int.from_bytes(server[4:8], "big"), now)
        if age > MAX_AGE or age < -MAX_AHEAD:  # remembered valid, since gone out of date
            return client + self._fresh(client, address, now), False
        if made_by == 0 and age <= RENEW_AFTER:
            return option, True
        return client + self._fresh(client, address, now), True

    def _fresh(self, client: bytes, address: bytes, now: int) -> bytes:
        """A server cookie for the client, reused while it is less than a minute old."""
        key = client + address
        made = self._made.get(key)
        if made is not None and 0 <= _age(int.from_bytes(made[4:8], "big"), now) < 60:
            return made
        made = self.make(client, address, now)
        self._made.put(key, made)
        return made
