"""Who is asking: the address that decides, its ECS source prefix, and its location."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Protocol

from gslb.geo import Location
from gslb.netrules import NetworkRules

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Hashed selection keys on the client's network, not its host: a resolver's
# clients behind one /24 (or /56) should see one answer, as they share a cache.
HASH_PREFIX = {4: 24, 6: 56}


@dataclass(frozen=True, slots=True)
class Client:
    address: IPAddress | None  # the ECS address when the query had ECS, else the source
    source_prefix: int | None  # the ECS source prefix; None without ECS
    location: Location | None  # None: unknown (private, not in the database, no database)
    # How many leading bits of the address the location answer depended on:
    # the database network's prefix (lengthened so no operator network splits it);
    # 0 when there is no database to ask and no operator network near.
    geo_prefix: int = 0
    networks: tuple[str, ...] = ()  # operator networks (`serves: networks`) holding it

    @property
    def family(self) -> int:
        return 4 if self.address is None or self.address.version == 4 else 6

    @property
    def full_prefix(self) -> int:
        """How many bits of the address are real: the ECS source prefix, or all of them."""
        if self.source_prefix is not None:
            return self.source_prefix
        return 32 if self.family == 4 else 128

    def hash_network(self) -> tuple[bytes, int]:
        """The client network hashed selection keys on, and its prefix length."""
        if self.address is None:
            return b"", 0
        prefix = min(HASH_PREFIX[self.family], self.full_prefix)
        # The network address by masking the integer: a new client network costs this
        # once per family of answer key, so no text round trip through ipaddress.
        host_bits = self.address.max_prefixlen - prefix
        network = int(self.address) >> host_bits << host_bits
        return network.to_bytes(self.address.max_prefixlen // 8, "big") + bytes((prefix,)), prefix


UNKNOWN_CLIENT = Client(address=None, source_prefix=None, location=None)


class GeoLookup(Protocol):
    def lookup(self, address: str | IPAddress) -> Location | None: ...


def locate(
    address: IPAddress,
    source_prefix: int | None,
    geo: GeoLookup | None,
    rules: NetworkRules | None = None,
) -> Client:
    """The Client for an address (and ECS source prefix), placed by the GeoIP database and
    the operator's networks (`rules`, the plan's).

    Without a database nothing depends on the client's address (geo_prefix 0). An address
    the database does not place depended on all its known bits: the ECS source prefix, or
    the whole address. Operator networks lengthen that so none of them splits the block.
    """
    if geo is None:
        client = Client(address, source_prefix, None, 0)
    else:
        location = geo.lookup(address)
        if location is not None:
            client = Client(address, source_prefix, location, location.prefix_len)
        else:
            full = source_prefix if source_prefix is not None else address.max_prefixlen
            client = Client(address, source_prefix, None, full)
    if not rules:
        return client
    return replace(
        client,
        geo_prefix=rules.scope(address, client.geo_prefix),
        networks=rules.matching(address),
    )
