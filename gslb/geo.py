"""Client location from a MaxMind-format (mmdb) database, cached by the network that matched.

This sits on the DNS hot path. A database lookup decodes a whole record (tens of
microseconds); a client network is looked up once, and every later address in the same
database network is answered from a dict. Each database network is a leaf of the mmdb
search tree, so the cached networks never overlap and an address can be found in at most
one of them: the cache probes the few prefix lengths seen so far, most populated first,
and any hit is the answer.

Addresses that no database places (private, loopback, link-local, multicast, unspecified
and reserved ranges) are answered None before any lookup. IPv4-mapped IPv6 addresses
(::ffff:a.b.c.d) are looked up, cached and reported as the IPv4 address they carry.

Text addresses are parsed with `socket.inet_pton`, which is about ten times faster than
`ipaddress` and is the only thing taken from `socket` here: no sockets are opened.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from socket import AF_INET, AF_INET6, inet_pton
from types import MappingProxyType, TracebackType
from typing import Final, Self

import maxminddb

from gslb.errors import GslbError
from gslb.geo_records import read_record

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_CACHE_SIZE: Final = 100_000  # networks, both families together

_MAPPED_V4: Final = 0xFFFF  # the upper 96 bits of ::ffff:a.b.c.d
_REORDER_EVERY: Final = 1024  # misses between re-sorting the probe order by table size

# IPv4 ranges that no GeoIP database places. Whole /8s by first octet, and for four
# first octets one smaller block each as (shift, network >> shift).
_V4_WHOLE_OCTETS: Final = frozenset({0, 10, 127, *range(224, 256)})  # 224/4 multicast, 240/4
_V4_PARTIAL: Final = MappingProxyType(
    {
        100: (22, 0x64400000 >> 22),  # 100.64.0.0/10 shared address space (carrier-grade NAT)
        169: (16, 0xA9FE0000 >> 16),  # 169.254.0.0/16 link-local
        172: (20, 0xAC100000 >> 20),  # 172.16.0.0/12 private
        192: (16, 0xC0A80000 >> 16),  # 192.168.0.0/16 private
    }
)


class GeoDatabaseError(GslbError):
    """The GeoIP database could not be opened or is not a MaxMind-format database."""


@dataclass(frozen=True, slots=True)
class Location:
    """Where the database places a client network."""

    country: str | None  # ISO 3166-1 alpha-2, upper case
    continent: str | None  # AF AN AS EU NA OC SA
    lat: float | None
    lon: float | None
    prefix_len: int  # of the database network that matched: the ECS scope of a geo decision
    network: str  # that network, e.g. "81.2.69.0/24"
    subdivision: str | None = None  # ISO 3166-2, e.g. "US-CA"


# Cached for a network the database has no record for; never returned to callers.
_UNPLACED: Final = Location(None, None, None, None, 0, "")


@dataclass(frozen=True, slots=True)
class GeoCacheInfo:
    hits: int  # lookups answered from the cache
    misses: int  # lookups that read the database
    skipped: int  # addresses answered None without a lookup (private, loopback, ...)
    size: int  # networks cached now
    max_size: int
    evictions: int  # networks dropped to stay within max_size


def is_unlocatable(address: IPAddress) -> bool:
    """True for addresses no database places: private, loopback, link-local, multicast,
    unspecified and reserved (IPv4-mapped IPv6 addresses are judged by their IPv4 part)."""
    number = int(address)
    if address.version == 6:
        if number >> 32 != _MAPPED_V4:
            return _special_v6(number)
        number &= 0xFFFFFFFF
    return _special_v4(number)


def _special_v4(number: int) -> bool:
    octet = number >> 24
    if octet in _V4_WHOLE_OCTETS:
        return True
    block = _V4_PARTIAL.get(octet)
    return block is not None and number >> block[0] == block[1]


def _special_v6(number: int) -> bool:
    # Only 2000::/3 is allocated as global unicast; outside it are the unspecified and
    # loopback addresses, unique-local fc00::/7, link-local fe80::/10, multicast ff00::/8
    # and IANA-reserved space (IPv4-mapped addresses are unwrapped before this).
    return number >> 125 != 1


class _FamilyCache:
    """Cached networks of one address family: {prefix_len: {network >> shift: slot}}, the
    slot being the network's place in the database's ring (see `_Ring`)."""

    __slots__ = ("bits", "probes", "tables")

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.tables: dict[int, dict[int, int]] = {}
        # (shift, table) pairs, the most populated prefix length first: the order is only
        # about speed, since an address lies in at most one cached network.
        self.probes: tuple[tuple[int, dict[int, int]], ...] = ()

    def table(self, prefix_len: int) -> dict[int, int]:
        table = self.tables.get(prefix_len)
        if table is None:
            table = self.tables[prefix_len] = {}
            self.reorder(prune=False)  # (it is empty until the caller fills it)
        return table

    def reorder(self, prune: bool = True) -> None:
        if prune:  # tables emptied by evictions are no longer worth a probe
            for plen in [plen for plen, table in self.tables.items() if not table]:
                del self.tables[plen]
        ordered = sorted(self.tables.items(), key=lambda item: (-len(item[1]), -item[0]))
        self.probes = tuple((self.bits - plen, table) for plen, table in ordered)

    def clear(self) -> None:
        self.tables.clear()
        self.probes = ()


class _Ring:
    """The cached networks of both families in CLOCK order ("second chance", as
    gslb/evicting.py): a hit sets the network's bit, and to make room the hand clears
    set bits until it finds a clear one, so a burst of one-off networks evicts itself
    and not the networks asked for again. Slots are reused in place once the ring is full."""

    __slots__ = ("hand", "keys", "referenced", "tables", "values")

    def __init__(self) -> None:
        self.tables: list[dict[int, int]] = []  # per slot: the family table holding it
        self.keys: list[int] = []  # per slot: its key in that table
        self.values: list[Location] = []
        self.referenced = bytearray()
        self.hand = 0

    def add(self, table: dict[int, int], key: int, value: Location, max_size: int) -> bool:
        """Keep `value` under `key` in `table`; True when another network was evicted."""
        if len(self.keys) < max_size:
            table[key] = len(self.keys)
            self.tables.append(table)
            self.keys.append(key)
            self.values.append(value)
            self.referenced.append(0)
            return False
        referenced, size = self.referenced, len(self.keys)
        slot = self.hand
        while referenced[slot]:
            referenced[slot] = 0
            slot = (slot + 1) % size
        self.hand = (slot + 1) % size
        del self.tables[slot][self.keys[slot]]
        self.tables[slot], self.keys[slot], self.values[slot] = table, key, value
        table[key] = slot
        return True


class GeoDatabase:
    """An mmdb file opened once, memory-mapped, with a cache of the networks looked up.

    Not thread-safe by design: it is used from the one event-loop thread of a server.
    """

    def __init__(self, path: str, *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        try:
            # MODE_AUTO: the C extension over mmap when it is installed, else pure-Python mmap.
            self._reader = maxminddb.open_database(path, maxminddb.MODE_AUTO)
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise GeoDatabaseError(f"cannot open GeoIP database {path}: {exc}") from exc
        metadata = self._reader.metadata()
        self.path = path
        self.database_type: str = metadata.database_type
        self.build_epoch: int = metadata.build_epoch
        self._has_v6 = metadata.ip_version == 6
        self._v4 = _FamilyCache(32)
        self._v6 = _FamilyCache(128)
        self._ring = _Ring()
        self._max_size = max(1, cache_size)
        self._hits = 0
        self._misses = 0
        self._skipped = 0
        self._evictions = 0

    def lookup(self, address: str | IPAddress) -> Location | None:
        """Where the database places `address`; None when it does not or cannot.

        Raises ValueError for text that is not an IP address.
        """
        if isinstance(address, str):
            try:
                if ":" in address:
                    number = int.from_bytes(inet_pton(AF_INET6, address), "big")
                    v6 = True
                else:
                    number = int.from_bytes(inet_pton(AF_INET, address), "big")
                    v6 = False
            except OSError:
                parsed = ipaddress.ip_address(address)  # scoped IPv6 ("fe80::1%eth0") or error
                number, v6 = int(parsed), parsed.version == 6
        else:
            number, v6 = int(address), address.version == 6
        if v6 and number >> 32 == _MAPPED_V4:
            number &= 0xFFFFFFFF
            v6 = False
        if _special_v6(number) if v6 else _special_v4(number):
            self._skipped += 1
            return None
        cache = self._v6 if v6 else self._v4
        for shift, table in cache.probes:
            slot = table.get(number >> shift)
            if slot is not None:
                self._hits += 1
                ring = self._ring
                ring.referenced[slot] = 1
                hit = ring.values[slot]
                return None if hit is _UNPLACED else hit
        return self._miss(cache, number, v6)

    def _miss(self, cache: _FamilyCache, number: int, v6: bool) -> Location | None:
        if v6 and not self._has_v6:
            self._skipped += 1  # an IPv4-only database cannot place an IPv6 client
            return None
        self._misses += 1
        address: IPAddress = ipaddress.IPv6Address(number) if v6 else ipaddress.IPv4Address(number)
        record, prefix_len = self._reader.get_with_prefix_len(address)
        # An IPv4 address in an IPv6 database comes back with an IPv4 prefix length; the
        # clamp only guards against a malformed tree that ends above the IPv4 subtree.
        prefix_len = min(max(prefix_len, 0), cache.bits)
        fields = read_record(record)
        location = _UNPLACED
        if fields is not None:
            shift = cache.bits - prefix_len
            network = type(address)(number >> shift << shift)
            location = Location(
                fields.country,
                fields.continent,
                fields.lat,
                fields.lon,
                prefix_len,
                f"{network}/{prefix_len}",
                fields.subdivision,
            )
        table = cache.table(prefix_len)
        if self._ring.add(table, number >> (cache.bits - prefix_len), location, self._max_size):
            self._evictions += 1
        if self._misses % _REORDER_EVERY == 0:
            cache.reorder()
        return None if location is _UNPLACED else location

    def cache_info(self) -> GeoCacheInfo:
        return GeoCacheInfo(
            self._hits,
            self._misses,
            self._skipped,
            len(self._ring.keys),
            self._max_size,
            self._evictions,
        )

    def close(self) -> None:
        self._reader.close()
        self._v4.clear()
        self._v6.clear()
        self._ring = _Ring()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class NoGeo:
    """No database: every client's location is unknown, so each service answers in its
    default region order."""

    database_type = "none"
    path: str | None = None

    def lookup(self, address: str | IPAddress) -> Location | None:
        return None

    def cache_info(self) -> GeoCacheInfo:
        return GeoCacheInfo(0, 0, 0, 0, 0, 0)

    def close(self) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_geo(path: str | None, *, cache_size: int = DEFAULT_CACHE_SIZE) -> GeoDatabase | NoGeo:
    """The database at `path`, or NoGeo when no database is configured."""
    if path is None or path == "":
        return NoGeo()
    return GeoDatabase(path, cache_size=cache_size)
