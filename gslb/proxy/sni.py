"""Which certificate answers a TLS ClientHello: the server name (SNI) looked up in a table built
once per load. No I/O; `gslb.proxy.tls` calls `choose` from OpenSSL's servername callback.

An exact name beats a wildcard, whatever their order; among certificates claiming the same
name the first listed wins; `*.example.com` covers one label (`a.example.com`, not
`example.com` nor `a.b.example.com`, as RFC 6125 §6.4.3 has clients check it); no SNI, or a
name nobody claims, gets the first certificate, the default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gslb.model import frozen_map

DEFAULT = 0  # the index of the default certificate


@dataclass(frozen=True, slots=True)
class SniTable:
    exact: Mapping[str, int]  # host name -> certificate index
    wildcard: Mapping[str, int]  # parent of a `*.parent` name -> certificate index

    @classmethod
    def build(cls, names: Sequence[Sequence[str]]) -> SniTable:
        """`names[i]`: the names of certificate i (lower case, as gslb.certificates reads
        them)."""
        exact: dict[str, int] = {}
        wildcard: dict[str, int] = {}
        for index, cert_names in enumerate(names):
            for name in cert_names:
                if name.startswith("*."):
                    wildcard.setdefault(name[2:], index)
                elif "*" not in name:  # partial wildcards (w*.example.com) match nothing
                    exact.setdefault(name, index)
        return cls(frozen_map(exact), frozen_map(wildcard))

    def choose(self, server_name: str | None) -> int:
        """The index of the certificate for `server_name` (None: the client sent no SNI)."""
        if not server_name:
            return DEFAULT
        name = server_name.rstrip(".").lower()
        index = self.exact.get(name)
        if index is not None:
            return index
        _, dot, parent = name.partition(".")
        if dot and parent:
            index = self.wildcard.get(parent)
        return DEFAULT if index is None else index
