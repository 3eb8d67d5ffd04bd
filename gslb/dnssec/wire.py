"""Wire forms DNSSEC needs: canonical names and rdata (RFC 4034 §6), key tags
(RFC 4034 Appendix B), DNSKEY/DS/RRSIG/NSEC rdata, and NSEC type bitmaps.

Pure: bytes in, bytes out. Our RRsets hold dnslib rdata; the canonical form packs each
one with name compression off and names in lower case (RFC 4034 §6.2, RFC 6840 §5.1).
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Iterable

from dnslib import DNSBuffer, DNSLabel
from dnslib.dns import RD

TYPE_DS = 43
TYPE_RRSIG = 46
TYPE_NSEC = 47
TYPE_DNSKEY = 48
TYPE_CDS = 59
TYPE_CDNSKEY = 60
TYPE_NXNAME = 128  # RFC 9824: the name does not exist (compact denial)
CLASS_IN = 1
DNSKEY_ZONE = 0x0100  # flags: a zone key
DNSKEY_SEP = 0x0001  # flags: secure entry point, set on a combined signing key
PROTOCOL = 3
DIGEST_SHA256 = 2
ECDSAP256SHA256 = 13
ED25519 = 15
ALGORITHMS = {"ECDSAP256SHA256": ECDSAP256SHA256, "ED25519": ED25519}
ALGORITHM_NAMES = {number: name for name, number in ALGORITHMS.items()}


@functools.lru_cache(maxsize=4096)  # owner and signer names repeat in every answer
def name_wire(name: str) -> bytes:
    """An absolute name's canonical wire form: plain labels, lower case."""
    if "\\" not in name and name.isascii():  # plain labels: no escapes to read
        labels = name.lower().rstrip(".").encode().split(b".") if name != "." else []
        return b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"
    out = bytearray()
    for label in DNSLabel(name.lower()).label:
        out.append(len(label))
        out += label.lower()
    out.append(0)
    return bytes(out)


def label_count(name: str) -> int:
    """RRSIG's Labels field: the owner's labels, not counting the root (or a `*`)."""
    wire = name_wire(name)
    count, pos = 0, 0
    while wire[pos]:
        if not (count == 0 and wire[pos : pos + 2] == b"\x01*"):
            count += 1
        pos += wire[pos] + 1
    return count


class _CanonicalBuffer(DNSBuffer):  # type: ignore[misc]  # dnslib is untyped
    """Packs rdata with no name compression and names in lower case."""

    def encode_name(self, name: DNSLabel | str) -> None:
        label = name if isinstance(name, DNSLabel) else DNSLabel(name)
        self.encode_name_nocompress(DNSLabel([part.lower() for part in label.label]))


def rdata_wire(rd: RD) -> bytes:
    """One rdata in canonical form."""
    if type(rd) is RD:  # opaque bytes (our DNSSEC records): already canonical
        return bytes(rd.data)
    buffer = _CanonicalBuffer()
    rd.pack(buffer)
    return bytes(buffer.data)


def key_tag(dnskey_rdata: bytes) -> int:
    """RFC 4034 Appendix B (every algorithm but the retired RSA/MD5)."""
    total = 0
    for i, byte in enumerate(dnskey_rdata):
        total += byte if i & 1 else byte << 8
    total += (total >> 16) & 0xFFFF
    return total & 0xFFFF


def dnskey_rdata(flags: int, algorithm: int, public_key: bytes) -> bytes:
    return struct.pack("!HBB", flags, PROTOCOL, algorithm) + public_key


def ds_rdata(owner: str, dnskey: bytes) -> bytes:
    """The DS (SHA-256) of one DNSKEY: what the parent zone publishes."""
    tag = key_tag(dnskey)
    digest = hashlib.sha256(name_wire(owner) + dnskey).digest()
    return struct.pack("!HBB", tag, dnskey[3], DIGEST_SHA256) + digest


def rrsig_head(
    covered: int,
    algorithm: int,
    owner: str,
    original_ttl: int,
    expiration: int,
    inception: int,
    tag: int,
    signer: str,
) -> bytes:
    """RRSIG rdata up to the signature: the part that is signed too (RFC 4034 §3.1.8.1)."""
    fixed = struct.pack(
        "!HBBIIIH",
        covered,
        algorithm,
        label_count(owner),
        original_ttl,
        expiration & 0xFFFFFFFF,  # serial number arithmetic (RFC 4034 §3.1.5)
        inception & 0xFFFFFFFF,
        tag,
    )
    return fixed + name_wire(signer)


def signed_data(head: bytes, owner: str, rtype: int, ttl: int, rdatas: Iterable[bytes]) -> bytes:
    """RRSIG head + the RRset in canonical order, each RR as owner|type|class|TTL|rdata."""
    prefix = name_wire(owner) + struct.pack("!HHI", rtype, CLASS_IN, ttl)
    rrs = sorted(set(rdatas))  # canonical order: by rdata octets; duplicates removed
    return head + b"".join(prefix + struct.pack("!H", len(rd)) + rd for rd in rrs)


def type_bitmap(types: Iterable[int]) -> bytes:
    """NSEC Type Bit Maps (RFC 4034 §4.1.2): windows of up to 32 octets."""
    windows: dict[int, bytearray] = {}
    for rtype in sorted(set(types)):
        window, low = divmod(rtype, 256)
        bits = windows.setdefault(window, bytearray(32))
        bits[low // 8] |= 0x80 >> (low % 8)
    out = bytearray()
    for window in sorted(windows):
        bits = windows[window]
        length = max(i for i, octet in enumerate(bits) if octet) + 1
        out += bytes((window, length)) + bits[:length]
    return bytes(out)


def nsec_rdata(next_wire: bytes, types: Iterable[int]) -> bytes:
    """NSEC rdata; `next_wire` is the next owner name's wire form, as compact denial's
    immediate successor (`\\000.name`) has no text form our names can hold."""
    return next_wire + type_bitmap(types)


def successor_wire(name: str) -> bytes:
    """The name's immediate successor in canonical order: `\\000.name` (RFC 9824 §3)."""
    return b"\x01\x00" + name_wire(name)
