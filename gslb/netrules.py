"""Operator networks (`serves: {networks: [...]}`): an explicit prefix map, as gdnsd's
`nets` and PowerDNS's netmask rules, that beats every GeoIP-derived mapping.

Pure and built once per plan. `matching(address)` lists the rule networks that contain an
address, longest prefix first; `scope(address, known)` is the ECS scope an answer that
depends on the rules (and on `known` leading bits already, e.g. the GeoIP network) must
carry: long enough that no rule network splits the block, so every address in it gets the
same answer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class NetworkRules:
    networks: tuple[IPNetwork, ...] = ()  # distinct, longest prefix first
    # per family: the prefix lengths in use, longest first, and the networks by
    # (prefix length, network address as an int)
    _lengths: dict[int, tuple[int, ...]] = field(default_factory=dict, compare=False)
    _by_key: dict[tuple[int, int, int], IPNetwork] = field(default_factory=dict, compare=False)

    @classmethod
    def build(cls, networks: Iterable[IPNetwork]) -> NetworkRules:
        distinct = sorted(
            set(networks), key=lambda n: (-n.prefixlen, n.version, int(n.network_address))
        )
        lengths: dict[int, tuple[int, ...]] = {}
        by_key: dict[tuple[int, int, int], IPNetwork] = {}
        for version in (4, 6):
            lengths[version] = tuple(
                sorted({n.prefixlen for n in distinct if n.version == version}, reverse=True)
            )
        for network in distinct:
            by_key[(network.version, network.prefixlen, int(network.network_address))] = network
        return cls(tuple(distinct), lengths, by_key)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def matching(self, address: IPAddress) -> tuple[str, ...]:
        """The rule networks containing `address`, longest prefix first (as text)."""
        bits = address.max_prefixlen
        number = int(address)
        found = []
        for length in self._lengths.get(address.version, ()):
            shift = bits - length
            network = self._by_key.get((address.version, length, number >> shift << shift))
            if network is not None:
                found.append(str(network))
        return tuple(found)

    def scope(self, address: IPAddress, known: int) -> int:
        """The shortest prefix >= `known` whose block around `address` holds no rule
        network that is longer (one inside the block would decide part of it): answers
        steered by the rules then hold for every address of that block."""
        number = int(address)
        bits = address.max_prefixlen
        inside = [
            (n.prefixlen, int(n.network_address))
            for n in self.networks
            if n.version == address.version and n.prefixlen > known
        ]
        scope = known
        while scope < bits:
            shift = bits - scope
            block = number >> shift
            if not any(p > scope and start >> shift == block for p, start in inside):
                return scope
            scope += 1
        return scope
