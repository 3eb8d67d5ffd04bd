"""Frozen value types for a loaded configuration.

Everything here is validated by `gslb.config` before it is built, so code that
receives these values can trust them. Domain names are absolute, lower-case and
end with a dot ("www.gslb.example.com."); the DNS layer keeps the query's own
spelling for the reply.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    from gslb.dnssec.keys import ZoneKey

K = TypeVar("K")
V = TypeVar("V")

Policy = Literal["geo", "weighted", "failover"]
Picker = Literal["all", "weighted", "hashed", "first"]
CheckKind = Literal["http", "https", "tcp"]
ProxyMethod = Literal["round_robin", "least_conn", "weighted", "ip_hash", "sticky"]

POLICIES: tuple[Policy, ...] = ("geo", "weighted", "failover")
PICKERS: tuple[Picker, ...] = ("all", "weighted", "hashed", "first")
CHECK_KINDS: tuple[CheckKind, ...] = ("http", "https", "tcp")
PROXY_METHODS: tuple[ProxyMethod, ...] = (
    "round_robin",
    "least_conn",
    "weighted",
    "ip_hash",
    "sticky",
)
RECORD_TYPES = ("SOA", "NS", "A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA", "PTR")


def frozen_map(items: Mapping[K, V] | None = None) -> Mapping[K, V]:
    """A read-only view of a fresh dict: the mapping type used inside frozen values."""
    return MappingProxyType(dict(items or {}))


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """How to probe an endpoint. `port` None means the kind's default (80, 443)."""

    kind: CheckKind = "http"
    path: str = "/health"
    port: int | None = None
    host: str | None = None  # Host header for http(s); the address when None
    expect: int = 200  # the status that counts as healthy
    interval: float = 10.0  # seconds
    timeout: float = 2.0
    rise: int = 2  # consecutive successes to become healthy
    fall: int = 3  # consecutive failures to become unhealthy
    verify_tls: bool = True

    def port_or_default(self) -> int:
        if self.port is not None:
            return self.port
        return 443 if self.kind == "https" else 80


@dataclass(frozen=True, slots=True)
class Record:
    """One static resource record set member; `rdata` is zone-file text with absolute names."""

    name: str
    rtype: str
    ttl: int
    rdata: str


@dataclass(frozen=True, slots=True)
class Soa:
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int
    ttl: int


DNSSEC_ALGORITHMS = ("ECDSAP256SHA256", "ED25519")
DNSSEC_DENIALS = ("compact",)


@dataclass(frozen=True, slots=True)
class DnssecSpec:
    """A zone's `dnssec:` block, with the keys read from (or made in) its directory."""

    algorithm: str
    directory: str  # absolute
    denial: str = "compact"
    keys: tuple[ZoneKey, ...] = ()  # oldest first; at least one active once loaded


@dataclass(frozen=True, slots=True)
class Service:
    """A name answered by steering rather than by static records."""

    name: str
    ttl: int
    policy: Policy
    select: Picker
    answers: int
    regions: tuple[str, ...]  # the default (and failover) order
    region_weights: Mapping[str, int] = field(default_factory=frozen_map)  # policy weighted


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    file: str
    ttl: int
    soa: Soa
    ns: tuple[str, ...]
    records: tuple[Record, ...]  # static records, the apex SOA and NS included
    services: Mapping[str, Service]
    dnssec: DnssecSpec | None = None  # None: unsigned


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address a service can answer with in one region."""

    address: str  # canonical text form (ipaddress's)
    family: Literal[4, 6]
    weight: int = 1
    health: CheckSpec | None = None  # overrides the region's check for this endpoint


@dataclass(frozen=True, slots=True)
class Backend:
    """One upstream of a region's L7 proxy."""

    name: str
    url: str
    host: str
    port: int
    weight: int = 1
    max_connections: int = 0  # requests in flight to it at once; 0: no cap
    ca: str | None = None  # https: CA file its certificate is verified with; None: the system's

    @property
    def https(self) -> bool:
        """Spoken to over TLS (an https:// URL), its certificate verified for `host`."""
        return self.url.startswith("https://")


ACCESS_LOG_FORMATS = ("json", "combined")


@dataclass(frozen=True, slots=True)
class AccessLogSpec:
    """`proxy.access_log:`: one line per request, to a file or stdout ("-")."""

    path: str = "-"
    format: str = "json"


TLS_VERSIONS = ("1.2", "1.3")


@dataclass(frozen=True, slots=True)
class TlsCertificate:
    """One certificate of the proxy's TLS listener: PEM files, absolute paths."""

    cert: str  # the certificate, then any intermediates
    key: str  # its private key, unencrypted


@dataclass(frozen=True, slots=True)
class ProxyTlsSpec:
    """`proxy.tls:`: the HTTPS listener. SNI picks the certificate whose names match; the
    first one is the default."""

    listen: HostPort
    certificates: tuple[TlsCertificate, ...]
    min_version: str = "1.2"  # one of TLS_VERSIONS
    handshake_timeout: float = 10.0
    shutdown_timeout: float = 5.0  # for the client's close_notify, once the proxy closes


@dataclass(frozen=True, slots=True)
class ProxyRoute:
    """`proxy.routes:` item: requests for `host` (exact or `*.suffix`, None: any) whose path
    starts with `path` go to the named backends."""

    host: str | None
    path: str
    backends: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProxySpec:
    listen: HostPort
    admin: HostPort | None
    method: ProxyMethod
    backends: tuple[Backend, ...]
    health: CheckSpec | None = None
    drain_timeout: float = 30.0
    drain_grace: float = 1.0  # draining: an idle keep-alive connection stays open this long
    drain_close_spread: float = 1.0  # ... plus a random share of this (spreads reconnects)
    connect_timeout: float = 2.0
    read_timeout: float = 30.0  # between bytes from a backend
    total_timeout: float = 60.0  # one whole request, first byte in to last byte out
    client_timeout: float = 10.0  # to receive a request's headers (slowloris)
    idle_timeout: float = 60.0  # keep-alive idle, client side
    tunnel_idle_timeout: float = 3600.0  # an Upgrade tunnel with no byte either way is closed
    max_header_bytes: int = 16384
    max_headers: int = 100
    fail_threshold: int = 3  # passive: consecutive errors that take a backend out
    cooldown: float = 10.0  # passive: seconds out before it is tried again
    panic_threshold: float = 0.5  # below this share of usable backends, passive marks are ignored
    sticky_cookie: str = "GSLB_BACKEND"
    access_log: AccessLogSpec | None = None
    routes: tuple[ProxyRoute, ...] = ()  # first match wins; no match: all backends
    max_connections: int = 10000  # client connections; at it the proxy stops accepting
    queue_timeout: float = 5.0  # a request waiting for a backend at its cap gets 503 after
    tls: ProxyTlsSpec | None = None  # the HTTPS listener, beside the plain one


@dataclass(frozen=True, slots=True)
class Region:
    name: str
    file: str
    lat: float | None
    lon: float | None
    countries: frozenset[str]  # ISO 3166-1 alpha-2, upper case
    continents: frozenset[str]  # AF AN AS EU NA OC SA
    weight: int
    health: CheckSpec | None
    endpoints: Mapping[str, tuple[Endpoint, ...]]  # service name -> endpoints, listed order
    proxy: ProxySpec | None = None
    subdivisions: frozenset[str] = frozenset()  # ISO 3166-2, upper case: "US-CA"
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()  # first of all

    def distinct_endpoints(self) -> dict[str, Endpoint]:
        """Each address once (an address can serve several services), first listing first."""
        out: dict[str, Endpoint] = {}
        for members in self.endpoints.values():
            for endpoint in members:
                out.setdefault(endpoint.address, endpoint)
        return out


HEALTH_QUORUMS = ("any", "majority", "all")


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """`cluster:`: several DNS nodes sharing admin state and health verdicts through etcd."""

    node: str
    etcd_endpoints: tuple[str, ...] = ("http://127.0.0.1:2379",)
    prefix: str = "/gslb/"
    health_quorum: str = "majority"
    lease_ttl: float = 10.0  # a node that stops renewing leaves the live set after this
    audit_keep: int = 1000  # audit entries kept in etcd; older ones are deleted


@dataclass(frozen=True, slots=True)
class TcpSettings:
    """`dns.tcp:`: what one client, or many, may hold of the DNS server's TCP side."""

    max_connections: int = 1024  # beyond it the oldest idle connection is closed
    max_per_client: int = 64  # per source address
    io_timeout: float = 2.0  # a query must arrive whole, and a reply be read, within this


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """`dns.rate_limit:`: response rate limiting over UDP (gslb/dns/rrl.py)."""

    responses_per_second: float = 20.0  # per account: client block and response kind
    window: float = 5.0  # the burst an account holds: rate x window
    slip: int = 2  # every Nth limited reply goes out truncated (TC=1); 0: drop them all
    ipv4_prefix: int = 24  # the client block of the source address (never the ECS)
    ipv6_prefix: int = 56
    exempt: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
        ipaddress.IPv4Network("127.0.0.0/8"),
    )
    max_accounts: int = 100_000  # bounded: the least recent account not in debt goes first


@dataclass(frozen=True, slots=True)
class CookieSettings:
    """`dns.cookies:`: DNS Cookies (RFC 7873), server cookies as RFC 9018 (gslb/dns/cookies.py)."""

    secret_env: str = "GSLB_DNS_COOKIE_SECRET"  # 32 hex digits; more, comma-separated: rollover


@dataclass(frozen=True, slots=True)
class QueryLogSettings:
    """`query_log:`: one query in `sample`, with its reply, as dnstap (gslb/dns/querylog.py)."""

    path: str
    sample: int = 100


@dataclass(frozen=True, slots=True)
class SafetySettings:
    """`safety:`: rules an admin change must keep (gslb/safety.py); forced past with force."""

    min_serving_regions: int = 1  # per service and family; 0: no rule


@dataclass(frozen=True, slots=True)
class ServerSettings:
    dns_listen: tuple[HostPort, ...] = (HostPort("0.0.0.0", 53),)
    api_listen: HostPort = HostPort("127.0.0.1", 8053)
    token_env: str = "GSLB_API_TOKEN"
    token_file: str | None = None
    geoip_database: str | None = None
    state_path: str | None = None
    max_udp_size: int = 1232  # DNS Flag Day 2020
    tcp_idle_timeout: float = 10.0
    tcp: TcpSettings = TcpSettings()
    rate_limit: RateLimitSettings | None = None  # None: replies are not rate-limited
    cookies: CookieSettings | None = None  # None: COOKIE options are ignored
    identity: str | None = None  # NSID and CH TXT id.server/hostname.bind; None: not answered
    workers: int = 1
    cache_entries: int = 100_000  # answers, parsed queries and client networks, each
    cache_memory: int = 256_000_000  # bytes the answer cache's tables take together
    cluster: ClusterSettings | None = None  # None: one node, admin state in state_path
    safety: SafetySettings = SafetySettings(min_serving_regions=0)  # absent: no rule
    query_log: QueryLogSettings | None = None  # None: no query log


@dataclass(frozen=True, slots=True)
class Config:
    directory: str
    settings: ServerSettings
    zones: tuple[Zone, ...]
    regions: Mapping[str, Region]
