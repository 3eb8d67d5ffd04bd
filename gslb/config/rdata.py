"""Record data as written in a zone file → zone-file presentation text with absolute names.

One function per type, chosen from a table. Each raises `BadRdata` with a message
for the user; `verify_with_dnslib` then proves the DNS layer can parse the result.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType

import dnslib

from gslb.config import names

MAX_CHARACTER_STRING = 255  # octets in one <character-string> (RFC 1035 §3.3)


class BadRdata(ValueError):
    """Record data that cannot be used; str() is the message for the user."""


def to_presentation(rtype: str, text: str, origin: str) -> str:
    """The canonical presentation form of one `rtype` value written in zone `origin`."""
    # Spaces at either end of a TXT string are data; elsewhere they are layout.
    return _BY_TYPE[rtype](text if rtype == "TXT" else text.strip(), origin)


def verify_with_dnslib(name: str, ttl: int, rtype: str, rdata: str) -> None:
    """Raise BadRdata unless dnslib parses the record exactly as the DNS layer will."""
    try:
        records = dnslib.RR.fromZone(f"{name} {ttl} IN {rtype} {rdata}")
    except Exception as exc:  # dnslib raises many types for bad input
        raise BadRdata(f"{rtype} record data {rdata!r} is not valid: {exc}") from None
    if len(records) != 1:
        raise BadRdata(f"{rtype} record data {rdata!r} is not one record")


def txt(text: str) -> str:
    """A TXT value as one or more quoted strings, each at most 255 octets."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise BadRdata("TXT data must not contain control characters")
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for char in text:
        width = len(char.encode())
        if size + width > MAX_CHARACTER_STRING:
            chunks.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    chunks.append("".join(current))
    return " ".join(_quote(chunk) for chunk in chunks)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _a(text: str, origin: str) -> str:
    address = _ip(text, "A")
    if address.version != 4:
        raise BadRdata(f"A record needs an IPv4 address, got IPv6 {text!r} (use AAAA)")
    return str(address)


def _aaaa(text: str, origin: str) -> str:
    address = _ip(text, "AAAA")
    if address.version != 6:
        raise BadRdata(f"AAAA record needs an IPv6 address, got IPv4 {text!r} (use A)")
    return str(address)


def _ip(text: str, rtype: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise BadRdata(f"bad address {text!r} in {rtype} record") from None


def _name(text: str, origin: str) -> str:
    if not text or len(text.split()) != 1:
        raise BadRdata(f"expected one name, got {text!r}")
    try:
        return names.in_rdata(text, origin)
    except names.BadName as exc:
        raise BadRdata(f"bad name: {exc}") from None


def _u16(text: str, what: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise BadRdata(f"{what} must be an integer 0..65535, got {text!r}")
    return int(text)


def _mx(text: str, origin: str) -> str:
    parts = text.split()
    if len(parts) != 2:
        raise BadRdata(f"MX needs 'preference exchange', got {text!r}")
    return f"{_u16(parts[0], 'MX preference')} {_name(parts[1], origin)}"


def _srv(text: str, origin: str) -> str:
    parts = text.split()
    if len(parts) != 4:
        raise BadRdata(f"SRV needs 'priority weight port target', got {text!r}")
    numbers = [
        _u16(part, what)
        for part, what in zip(parts[:3], ("priority", "weight", "port"), strict=True)
    ]
    return " ".join(str(n) for n in numbers) + " " + _name(parts[3], origin)


_CAA = re.compile(r"^([0-9]+)\s+([A-Za-z0-9]+)\s+(.*)$")


def _caa(text: str, origin: str) -> str:
    match = _CAA.match(text)
    if match is None:
        raise BadRdata(f"CAA needs 'flags tag \"value\"', got {text!r}")
    flags, tag, value = match.groups()
    if int(flags) > 255:
        raise BadRdata(f"CAA flags must be 0..255, got {flags}")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if '"' in value or "\\" in value or any(ord(c) < 0x20 for c in value):
        raise BadRdata(f"CAA value {value!r} must not hold quotes, backslashes or control chars")
    return f'{int(flags)} {tag.lower()} "{value}"'


def _txt(text: str, origin: str) -> str:
    return txt(text)


_BY_TYPE: Mapping[str, Callable[[str, str], str]] = MappingProxyType(
    {
        "A": _a,
        "AAAA": _aaaa,
        "CNAME": _name,
        "PTR": _name,
        "NS": _name,
        "MX": _mx,
        "SRV": _srv,
        "CAA": _caa,
        "TXT": _txt,
    }
)
