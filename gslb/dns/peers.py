"""The client's address as the sockets report it, as an address object."""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def peer_address(peer: str) -> Address | None:
    """`peer` parsed, an IPv4-mapped IPv6 address as the IPv4 one (a dual-stack socket
    reports IPv4 clients so); None when it is not an IP address."""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
