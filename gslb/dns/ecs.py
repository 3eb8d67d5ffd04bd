"""EDNS Client Subnet (RFC 7871): parse and validate the option, encode the reply's echo."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

OPTION_CODE = 8
FAMILY_BITS = {1: 32, 2: 128}


class EcsError(ValueError):
    """A malformed ECS option: the query gets FORMERR (RFC 7871 §7.1.1)."""


@dataclass(frozen=True, slots=True)
class ClientSubnet:
    family: int  # 1 = IPv4, 2 = IPv6 (the IANA address family numbers ECS uses)
    source: int  # source prefix length
    address: ipaddress.IPv4Address | ipaddress.IPv6Address  # zero-padded to full length

    def reply_option(self, scope: int) -> bytes:
        """The option's data as echoed in a reply, with `scope` as SCOPE PREFIX-LENGTH."""
        nbytes = (self.source + 7) // 8
        head = bytes([0, self.family, self.source, min(scope, self.source)])
        return head + self.address.packed[:nbytes]


def parse_ecs(data: bytes) -> ClientSubnet:
    if len(data) < 4:
        raise EcsError("ECS option shorter than 4 bytes")
    family = int.from_bytes(data[0:2], "big")
    source = data[2]
    bits = FAMILY_BITS.get(family)
    if bits is None:
        raise EcsError(f"ECS family {family} is neither 1 (IPv4) nor 2 (IPv6)")
    if source > bits:
        raise EcsError(f"ECS source prefix /{source} is longer than the address")
    address = data[4:]
    if len(address) != (source + 7) // 8:
        raise EcsError(f"ECS address has {len(address)} bytes for a /{source} prefix")
    if source % 8 and address and address[-1] & (0xFF >> (source % 8)):
        raise EcsError("ECS address has bits set beyond the source prefix")
    padded = address + bytes(bits // 8 - len(address))
    ip = ipaddress.IPv4Address(padded) if family == 1 else ipaddress.IPv6Address(padded)
    return ClientSubnet(family, source, ip)
