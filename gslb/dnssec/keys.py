"""Zone keys on disk: one combined signing key (CSK) per file pair, with its state.

A key directory (the zone's `dnssec.keys`) holds, per key, as BIND names them:

* `K<zone>+<alg>+<tag>.pem`: the private key, PKCS #8 PEM, mode 0600;
* `K<zone>+<alg>+<tag>.state`: JSON `{"state": ..., "created": ..., "changed": ...}`.

States, for a CSK rollover by double signature (RFC 6781 §4.1.2, RFC 7583 §3.3.2):

* `published`: in the DNSKEY RRset, signs nothing (pre-publication);
* `active`: in the DNSKEY RRset and signs every RRset; the newest active key is the one
  CDS/CDNSKEY name, so the parent's DS follows it;
* `retired`: neither published nor used; kept on disk as a record.

Signing uses `cryptography` (OpenSSL): ECDSA P-256 with deterministic nonces (RFC 6979),
so two nodes with the same key, or the cache and the full path, make the same bytes, and
Ed25519, deterministic by design.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gslb.dnssec.wire import (
    ALGORITHM_NAMES,
    DNSKEY_SEP,
    DNSKEY_ZONE,
    ECDSAP256SHA256,
    ED25519,
    dnskey_rdata,
    key_tag,
)

STATES = ("published", "active", "retired")
CSK_FLAGS = DNSKEY_ZONE | DNSKEY_SEP  # 257
_FILE = re.compile(r"^K(?P<zone>.+\.)\+(?P<alg>\d{3})\+(?P<tag>\d{5})\.pem$")
_ECDSA = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class KeyError_(Exception):
    """A key directory or key file that cannot be used; the message names the file."""


@dataclass(frozen=True, slots=True)
class ZoneKey:
    """One key of a zone, loaded: its DNSKEY rdata and tag, state, and signing function."""

    zone: str
    algorithm: int
    tag: int
    state: str
    dnskey: bytes  # DNSKEY rdata: flags, protocol, algorithm, public key
    path: str  # the .pem file
    created: str
    private: PrivateKey = field(compare=False, repr=False)

    @property
    def signs(self) -> bool:
        return self.state == "active"

    @property
    def published(self) -> bool:
        return self.state in ("published", "active")

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # Plans go to --workers pickled; OpenSSL key objects do not pickle, their DER does.
        der = self.private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fields = (self.zone, self.algorithm, self.tag, self.state, self.dnskey, self.path)
        return (_from_der, (*fields, self.created, der))

    def sign(self, data: bytes) -> bytes:
        """The signature field of an RRSIG over `data` (RFC 6605 §4, RFC 8080 §4)."""
        if isinstance(self.private, ed25519.Ed25519PrivateKey):
            return self.private.sign(data)
        r, s = decode_dss_signature(self.private.sign(data, _ECDSA))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _from_der(
    zone: str,
    algorithm: int,
    tag: int,
    state: str,
    dnskey: bytes,
    path: str,
    created: str,
    der: bytes,
) -> ZoneKey:
    private = serialization.load_der_private_key(der, password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
    return ZoneKey(zone, algorithm, tag, state, dnskey, path, created, private)


def public_key_bytes(private: PrivateKey) -> bytes:
    """The DNSKEY public key field: Ed25519's 32 octets, or ECDSA's X|Y (64 octets)."""
    public = private.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return point[1:]  # without the 0x04 "uncompressed" octet


def _generate(algorithm: int) -> PrivateKey:
    if algorithm == ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == ECDSAP256SHA256:
        return ec.generate_private_key(ec.SECP256R1())
    raise KeyError_(f"algorithm {algorithm} is not supported")


def file_stem(zone: str, algorithm: int, tag: int) -> str:
    return f"K{zone}+{algorithm:03d}+{tag:05d}"


def _now_text(clock: Callable[[], float]) -> str:
    # Microseconds, so keys made within one second still sort oldest first.
    now = clock()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def _write_private(path: str, pem: bytes) -> None:
    # Created 0600 from the start: the key is never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)


def write_state(path: str, state: str, created: str, changed: str) -> None:
    """The key's state file, replaced atomically (a node reading it sees old or new)."""
    temporary = path + ".tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"state": state, "created": created, "changed": changed}, out)
        out.write("\n")
    os.replace(temporary, path)


def generate_key(
    directory: str,
    zone: str,
    algorithm: int,
    state: str = "active",
    clock: Callable[[], float] = time.time,
) -> ZoneKey:
    """A new CSK in `directory` (made 0700 if missing); its files are never overwritten."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    while True:
        private = _generate(algorithm)
        dnskey = dnskey_rdata(CSK_FLAGS, algorithm, public_key_bytes(private))
        tag = key_tag(dnskey)
        stem = os.path.join(directory, file_stem(zone, algorithm, tag))
        if not os.path.exists(stem + ".pem"):  # a tag already used: draw another key
            break
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(stem + ".pem", pem)
    now = _now_text(clock)
    write_state(stem + ".state", state, now, now)
    return ZoneKey(zone, algorithm, tag, state, dnskey, stem + ".pem", now, private)


def _load_one(path: str, zone: str, algorithm: int) -> ZoneKey:
    try:
        with open(path, "rb") as handle:
            private = serialization.load_pem_private_key(handle.read(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyError_(f"{path}: cannot read the private key: {exc}") from None
    if algorithm == ED25519 and not isinstance(private, ed25519.Ed25519PrivateKey):
        raise KeyError_(f"{path}: not an Ed25519 key, as its name says")
    if algorithm == ECDSAP256SHA256 and not (
        isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1"
    ):
        raise KeyError_(f"{path}: not an ECDSA P-256 key, as its name says")
    assert isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
    dnskey = dnskey_rdata(CSK_FLAGS, algorithm, public_key_bytes(private))
    state_path = path[: -len(".pem")] + ".state"
    try:
        with open(state_path) as handle:
            meta = json.load(handle)
        state = meta["state"]
        created = str(meta.get("created", ""))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyError_(f"{state_path}: cannot read the key state: {exc}") from None
    if state not in STATES:
        raise KeyError_(f"{state_path}: state {state!r} is not one of {', '.join(STATES)}")
    return ZoneKey(zone, algorithm, key_tag(dnskey), state, dnskey, path, created, private)


def load_keys(directory: str, zone: str) -> tuple[ZoneKey, ...]:
    """Every key of `zone` in `directory`, oldest first; () when there are none."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return ()
    except OSError as exc:
        raise KeyError_(f"{directory}: cannot read the key directory: {exc}") from None
    keys = []
    for name in names:
        match = _FILE.match(name)
        if match is None or match["zone"].lower() != zone:
            continue
        algorithm = int(match["alg"])
        if algorithm not in ALGORITHM_NAMES:
            raise KeyError_(f"{os.path.join(directory, name)}: algorithm {algorithm} unsupported")
        key = _load_one(os.path.join(directory, name), zone, algorithm)
        if key.tag != int(match["tag"]):
            raise KeyError_(f"{key.path}: its key tag is {key.tag}, not the one in its name")
        keys.append(key)
    return tuple(sorted(keys, key=lambda k: (k.created, k.tag)))


def set_state(key: ZoneKey, state: str, clock: Callable[[], float] = time.time) -> ZoneKey:
    """The key's state file rewritten; returns the key in its new state."""
    write_state(key.path[: -len(".pem")] + ".state", state, key.created, _now_text(clock))
    return replace(key, state=state)
