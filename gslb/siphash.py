"""SipHash-2-4 (Aumasson and Bernstein, 2012): the keyed hash RFC 9018 server cookies use.

Python's own `hash()` is SipHash-1-3 with a per-process key (since 3.11), and no module of
the standard library exposes SipHash-2-4, so it is written out here: a few additions,
rotations and exclusive ors on 64-bit words, masked to 64 bits.
"""

from __future__ import annotations

MASK = (1 << 64) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & MASK


def siphash24(key: bytes, data: bytes) -> bytes:
    """The 8-byte SipHash-2-4 of `data` under the 16-byte `key` (little-endian, as specified)."""
    if len(key) != 16:
        raise ValueError("SipHash keys are 16 bytes")
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    size = len(data)
    whole = size - size % 8
    words = [int.from_bytes(data[i : i + 8], "little") for i in range(0, whole, 8)]
    # The last word: the remaining bytes, and the length's low byte on top.
    words.append(int.from_bytes(data[whole:], "little") | ((size & 0xFF) << 56))

    def rounds(count: int) -> None:
        nonlocal v0, v1, v2, v3
        for _ in range(count):
            v0 = (v0 + v1) & MASK
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & MASK
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & MASK
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & MASK
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)

    for word in words:
        v3 ^= word
        rounds(2)
        v0 ^= word
    v2 ^= 0xFF
    rounds(4)
    return ((v0 ^ v1 ^ v2 ^ v3) & MASK).to_bytes(8, "little")
