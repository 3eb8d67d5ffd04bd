"""The config's mapping kinds as declarative tables: keys, kinds, ranges, defaults.

The loader walks these tables; `gslb.config.jsonschema` renders them as JSON
Schema. Defaults that depend on other values (a SOA's TTL is the zone's, a
service's regions are all regions) are None here and filled in by the loader;
their `doc` says so.
"""

from __future__ import annotations

from gslb.config.fields import (
    Address,
    Bool,
    Choice,
    DomainName,
    Duration,
    HostPortKind,
    HttpUrl,
    Int,
    NetworkKind,
    Number,
    Path,
    Percent,
    Size,
    Text,
)
from gslb.config.tables import Field, ListOf, MapOf, OneOf, Table
from gslb.model import (
    ACCESS_LOG_FORMATS,
    CHECK_KINDS,
    DNSSEC_ALGORITHMS,
    DNSSEC_DENIALS,
    HEALTH_QUORUMS,
    PICKERS,
    POLICIES,
    PROXY_METHODS,
    TLS_VERSIONS,
    AccessLogSpec,
    CheckSpec,
    ClusterSettings,
    CookieSettings,
    HostPort,
    ProxySpec,
    ProxyTlsSpec,
    RateLimitSettings,
    SafetySettings,
    ServerSettings,
    TcpSettings,
)

MAX_TTL = 2**31 - 1  # RFC 2181 §8
CONTINENTS = ("AF", "AN", "AS", "EU", "NA", "OC", "SA")
RECORD_KEYS = ("A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA", "PTR", "NS")
REGION_NAME = r"[a-z0-9][a-z0-9-]{0,62}"
ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
IDENTITY = r"[!-~]([ -~]{0,253}[!-~])?"  # one TXT string: printable, no outer spaces
BACKEND_NAME = r"[A-Za-z0-9][A-Za-z0-9_.:\[\]-]*"
COOKIE_NAME = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"  # an RFC 6265 token

DEFAULT_SERVICE_TTL = 30
DEFAULT_ANSWERS = 8
"""A service answers with at most this many addresses unless it says `answers:`.
Eight A records fit easily in a 512-byte reply, so by default `select: all`
really means all for any ordinary region."""

TTL = Int(0, MAX_TTL, label="TTL")
WEIGHT = Int(1, 65535, label="weight")
PORT = Int(1, 65535, label="port")
REGION = Text(REGION_NAME, "a region name (a-z, 0-9, '-')", max_len=63)

_CHECK = CheckSpec()
_PROXY = ProxySpec(listen=HostPort("127.0.0.1", 0), admin=None, method="round_robin", backends=())
_SETTINGS = ServerSettings()

SOA = Table(
    "soa",
    (
        Field("mname", DomainName(), doc="primary name server; default: the first of `ns`"),
        Field(
            "rname",
            DomainName(mailbox=True),
            doc="responsible mailbox, as a name or user@domain; default: hostmaster.<zone>",
        ),
        Field("serial", Int(0, 2**32 - 1, label="serial"), default=1),
        Field("refresh", TTL, default=3600),
        Field("retry", TTL, default=600),
        Field("expire", TTL, default=604800),
        Field("minimum", TTL, default=60, doc="negative-caching TTL (RFC 2308)"),
        Field("ttl", TTL, doc="TTL of the SOA record; default: the zone's ttl"),
    ),
    doc="the zone's SOA record",
)

RDATA = ListOf(Text(what="record data", max_len=16384), single_ok=True, marked=True)
RECORD_SET = Table(
    "records entry",
    (
        *(
            Field(rtype, RDATA, doc=f"{rtype} record data, one value or a list")
            for rtype in RECORD_KEYS
        ),
        Field("ttl", TTL, doc="TTL of this owner's records; default: the zone's ttl"),
    ),
    doc="the static records of one owner name",
)

SERVICE_REGIONS = OneOf(
    (
        ListOf(REGION, marked=True),
        MapOf(WEIGHT, key_what="a region name", key_pattern=REGION_NAME),
    )
)
SERVICE = Table(
    "service",
    (
        Field("ttl", TTL, default=DEFAULT_SERVICE_TTL),
        Field("policy", Choice(POLICIES), default="geo"),
        Field("select", Choice(PICKERS), default="all"),
        Field("answers", Int(1, 64, label="answers"), default=DEFAULT_ANSWERS),
        Field(
            "regions",
            SERVICE_REGIONS,
            doc="a list (the failover/default order) or a mapping region: weight;"
            " default: every region, by name",
        ),
    ),
    doc="a name answered by steering",
)

DNSSEC = Table(
    "dnssec",
    (
        Field("algorithm", Choice(DNSSEC_ALGORITHMS), default="ECDSAP256SHA256"),
        Field(
            "keys",
            Path(),
            default="keys",
            doc="key directory, relative to the config directory; a combined signing key"
            " is created there on first use when it holds none (not with cluster:)",
        ),
        Field(
            "denial",
            Choice(DNSSEC_DENIALS),
            default="compact",
            doc="negative answers: RFC 9824 compact denial of existence",
        ),
    ),
    doc="sign every answer to a DO=1 query online; absent: unsigned",
)

ZONE = Table(
    "zone file",
    (
        Field("zone", DomainName(), required=True, doc="the zone's apex name"),
        Field("ttl", TTL, default=300, doc="default TTL of static records"),
        Field("soa", SOA),
        Field("ns", ListOf(DomainName(), min_items=1, marked=True), required=True),
        Field(
            "records",
            MapOf(RECORD_SET, key_what="an owner name"),
            default=(),
            doc='owner ("@", relative, or absolute with a trailing dot) → records',
        ),
        Field("services", MapOf(SERVICE, key_what="a service name"), default=()),
        Field("dnssec", DNSSEC, doc="absent: the zone is not signed"),
    ),
    doc="one DNS zone",
)

CHECK = Table(
    "health",
    (
        Field("type", Choice(CHECK_KINDS), default=_CHECK.kind),
        Field("path", Text(r"/\S*", "a path starting with '/'"), default=_CHECK.path),
        Field("port", PORT, doc="default: 80 for http, 443 for https"),
        Field("host", Text(r"[A-Za-z0-9_.:\[\]-]+", "a host name"), doc="Host header"),
        Field("expect", Int(100, 599, label="status"), default=_CHECK.expect),
        Field("interval", Duration(positive=True), default=_CHECK.interval),
        Field(
            "timeout",
            Duration(positive=True),
            default=_CHECK.timeout,
            doc="at most the interval (lowered to it when only the interval is written)",
        ),
        Field("rise", Int(1, 100, label="rise"), default=_CHECK.rise),
        Field("fall", Int(1, 100, label="fall"), default=_CHECK.fall),
        Field("verify_tls", Bool(), default=_CHECK.verify_tls),
    ),
    doc="how to probe an endpoint or backend",
)

ENDPOINT = Table(
    "endpoint",
    (
        Field("address", Address(), required=True),
        Field("weight", WEIGHT, default=1),
        Field("health", CHECK, doc="keys written here override the region's health check"),
    ),
)

TLS_FILE = Path(beside_file=True)

BACKEND = Table(
    "backend",
    (
        Field("name", Text(BACKEND_NAME, "a backend name"), doc="default: host:port of the url"),
        Field(
            "url",
            HttpUrl(https=True),
            required=True,
            doc="https://: TLS to the backend, its certificate verified for the URL's host "
            "(sent as SNI)",
        ),
        Field("weight", WEIGHT, default=1),
        Field(
            "max_connections",
            Int(0, 1_000_000),
            default=0,
            doc="requests in flight to this backend at once (0: no cap); more wait in a "
            "queue for up to queue_timeout, then get 503",
        ),
        Field(
            "ca",
            TLS_FILE,
            doc="https:// backend: CA file (PEM) its certificate is verified with, relative to "
            "the region file; default: the proxy's ca, else the system's trust store",
        ),
    ),
)

TIMEOUTS = Table(
    "timeouts",
    (
        Field("connect", Duration(positive=True), default=_PROXY.connect_timeout),
        Field("read", Duration(positive=True), default=_PROXY.read_timeout),
        Field("total", Duration(positive=True), default=_PROXY.total_timeout),
        Field("client", Duration(positive=True), default=_PROXY.client_timeout),
        Field("idle", Duration(positive=True), default=_PROXY.idle_timeout),
    ),
)

LIMITS = Table(
    "limits",
    (
        Field("max_header_bytes", Int(1024, 1 << 20), default=_PROXY.max_header_bytes),
        Field("max_headers", Int(1, 10000), default=_PROXY.max_headers),
    ),
)

PASSIVE = Table(
    "passive",
    (
        Field("fail_threshold", Int(1, 1000), default=_PROXY.fail_threshold),
        Field("cooldown", Duration(positive=True), default=_PROXY.cooldown),
    ),
)

STICKY = Table(
    "sticky",
    (Field("cookie", Text(COOKIE_NAME, "a cookie name", 128), default=_PROXY.sticky_cookie),),
)

_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"
ROUTE_HOST = rf"(\*\.)?{_LABEL}(\.{_LABEL})*\.?"
ROUTE_PATH = r"/[!-~]*"

ROUTE = Table(
    "route",
    (
        Field(
            "host",
            Text(ROUTE_HOST, "a host name or *.suffix", 253),
            doc="exact, case-insensitive, port ignored; *.example.com: any name under "
            "example.com; default: any host",
        ),
        Field(
            "path",
            Text(ROUTE_PATH, "a path starting with /", 1024),
            default="/",
            doc="a prefix of the request path (query left out)",
        ),
        Field(
            "backends",
            ListOf(Text(BACKEND_NAME, "a backend name"), min_items=1, marked=True),
            required=True,
            doc="names of backends of this proxy: the group the matching requests go to",
        ),
    ),
    doc="first match wins",
)

_ACCESS_LOG = AccessLogSpec()
ACCESS_LOG = Table(
    "access_log",
    (
        Field(
            "path",
            Path(dash=True),
            default=_ACCESS_LOG.path,
            doc="- is stdout; the file is reopened on SIGUSR1 (logrotate)",
        ),
        Field("format", Choice(ACCESS_LOG_FORMATS), default=_ACCESS_LOG.format),
    ),
    doc="one line per request: JSON or the combined format",
)

_TLS = ProxyTlsSpec(listen=HostPort("0.0.0.0", 8443), certificates=())
CERTIFICATE = Table(
    "certificate",
    (
        Field(
            "cert",
            TLS_FILE,
            required=True,
            doc="PEM file: the certificate, then its intermediates; relative to the region file",
        ),
        Field("key", TLS_FILE, required=True, doc="PEM file: its private key, unencrypted"),
    ),
    doc="its names (subjectAltName DNS entries, else the CN) are matched against SNI",
)

TLS = Table(
    "tls",
    (
        Field("listen", HostPortKind(), required=True),
        Field(
            "certificates",
            ListOf(CERTIFICATE, min_items=1),
            required=True,
            doc="SNI picks the certificate whose names match (exactly, else *.parent "
            "for one label); the first is the default",
        ),
        Field("min_version", Choice(TLS_VERSIONS), default=_TLS.min_version),
        Field(
            "handshake_timeout",
            Duration(positive=True),
            default=_TLS.handshake_timeout,
            doc="a client that has not finished its TLS handshake by then is disconnected",
        ),
        Field(
            "shutdown_timeout",
            Duration(positive=True),
            default=_TLS.shutdown_timeout,
            doc="once the proxy closes a TLS connection, how long it waits for the last "
            "bytes to go out and the client's close_notify before it drops the connection",
        ),
    ),
    doc="the HTTPS listener, beside the plain one (same backends, routes and limits); "
    "requests over it are sent on with X-Forwarded-Proto: https",
)

PROXY = Table(
    "proxy",
    (
        Field("listen", HostPortKind(), required=True),
        Field("admin", HostPortKind()),
        Field("method", Choice(PROXY_METHODS), default="round_robin"),
        Field("backends", ListOf(BACKEND, min_items=1), required=True),
        Field(
            "health",
            CHECK,
            doc="type http or tcp; the target is each backend's host:port (an https:// "
            "backend's http check goes over TLS, verified as its requests are)",
        ),
        Field("drain_timeout", Duration(), default=_PROXY.drain_timeout),
        Field(
            "drain_grace",
            Duration(),
            default=_PROXY.drain_grace,
            doc="draining: idle keep-alive connections stay open this long, so a request "
            "already on the wire is answered (with Connection: close)",
        ),
        Field(
            "drain_close_spread",
            Duration(),
            default=_PROXY.drain_close_spread,
            doc="draining: idle connections close at random over this long after the grace",
        ),
        Field(
            "tunnel_idle_timeout",
            Duration(positive=True),
            default=_PROXY.tunnel_idle_timeout,
            doc="a WebSocket (or other Upgrade) tunnel with no byte either way is closed",
        ),
        Field("timeouts", TIMEOUTS),
        Field("limits", LIMITS),
        Field("passive", PASSIVE),
        Field(
            "panic_threshold",
            Percent(),
            default=_PROXY.panic_threshold,
            doc="below this share of usable backends, passive marks are ignored (0% never)",
        ),
        Field("sticky", STICKY),
        Field("access_log", ACCESS_LOG, doc="without it no access log is written"),
        Field("tls", TLS, doc="without it the proxy speaks plain HTTP only"),
        Field(
            "ca",
            TLS_FILE,
            doc="CA file (PEM) that https:// backends' certificates are verified with, "
            "relative to the region file; default: the system's trust store",
        ),
        Field(
            "routes",
            ListOf(ROUTE),
            doc="optional: first match wins; default: all backends",
        ),
        Field(
            "max_connections",
            Int(1, 1_000_000),
            default=_PROXY.max_connections,
            doc="client connections open at once; at it the proxy stops accepting (the "
            "kernel's backlog queues new ones) until one closes; the admin port always answers",
        ),
        Field(
            "queue_timeout",
            Duration(positive=True),
            default=_PROXY.queue_timeout,
            doc="how long a request waits for a backend at its max_connections before 503",
        ),
    ),
    doc="the region's L7 proxy tier",
)

LOCATION = Table(
    "location",
    (
        Field("lat", Number(-90.0, 90.0, label="latitude"), required=True),
        Field("lon", Number(-180.0, 180.0, label="longitude"), required=True),
    ),
)

SERVES = Table(
    "serves",
    (
        Field("continents", ListOf(Choice(CONTINENTS, upper=True)), default=()),
        Field(
            "countries",
            ListOf(Text(r"[A-Za-z]{2}", "a two-letter country code")),
            default=(),
            doc="ISO 3166-1 alpha-2 codes",
        ),
        Field(
            "networks",
            ListOf(NetworkKind()),
            default=(),
            doc="client networks (ECS subnet or resolver address) sent here first, before any "
            "GeoIP mapping; the longest matching prefix wins",
        ),
        Field(
            "subdivisions",
            ListOf(Text(r"[A-Za-z]{2}-[A-Za-z0-9]{1,3}", "an ISO 3166-2 code such as US-CA")),
            default=(),
            doc="ISO 3166-2 codes (country-subdivision, e.g. US-CA, DE-BY); they beat countries",
        ),
    ),
)

ENDPOINTS = ListOf(OneOf((Address(), ENDPOINT)), marked=True)
REGION_FILE = Table(
    "region file",
    (
        Field("region", REGION, required=True),
        Field("location", LOCATION),
        Field("serves", SERVES),
        Field("weight", WEIGHT, default=1),
        Field("health", CHECK, doc="without it the region is taken as healthy, never probed"),
        Field(
            "services",
            MapOf(ENDPOINTS, key_what="a service name"),
            default=(),
            doc="service name (absolute, trailing dot optional) → its endpoints here",
        ),
        Field("proxy", PROXY),
    ),
    doc="one region",
)

_TCP = TcpSettings()
TCP_SETTINGS = Table(
    "tcp",
    (
        Field(
            "max_connections",
            Int(1, 1_000_000),
            default=_TCP.max_connections,
            doc="TCP connections in all; when full, the oldest idle one is closed for a new one",
        ),
        Field(
            "max_per_client",
            Int(1, 1_000_000),
            default=_TCP.max_per_client,
            doc="TCP connections from one source address; more are refused",
        ),
        Field(
            "io_timeout",
            Duration(positive=True),
            default=_TCP.io_timeout,
            doc="a query must arrive whole, and a reply be read, within this (a slow "
            "trickle does not extend it)",
        ),
    ),
    doc="limits of the DNS server's TCP side",
)

_RRL = RateLimitSettings()
RATE_LIMIT_SETTINGS = Table(
    "rate_limit",
    (
        Field(
            "responses_per_second",
            Number(0.1, 1_000_000),
            default=_RRL.responses_per_second,
            doc="UDP replies per second per account: client block and response kind "
            "(name+type; NXDOMAIN per zone; errors)",
        ),
        Field(
            "window",
            Duration(positive=True),
            default=_RRL.window,
            doc="the burst an account holds: responses_per_second x window",
        ),
        Field(
            "slip",
            Int(0, 10, label="slip"),
            default=_RRL.slip,
            doc="every Nth limited reply goes out as an empty TC=1 reply (0: drop all)",
        ),
        Field(
            "ipv4_prefix",
            Int(8, 32, label="prefix"),
            default=_RRL.ipv4_prefix,
            doc="client block of the source address (never the ECS)",
        ),
        Field("ipv6_prefix", Int(16, 128, label="prefix"), default=_RRL.ipv6_prefix),
        Field(
            "exempt",
            ListOf(NetworkKind(), single_ok=True),
            default=_RRL.exempt,
            doc="networks never limited",
        ),
        Field(
            "max_accounts",
            Int(1000, 10_000_000),
            default=_RRL.max_accounts,
            doc="accounts kept; when full the oldest go first",
        ),
    ),
    doc="response rate limiting (BIND/Knot RRL); absent = off",
)

COOKIE_SETTINGS = Table(
    "cookies",
    (
        Field(
            "secret_env",
            Text(ENV_NAME, "an environment variable name"),
            default=CookieSettings().secret_env,
            doc="the variable holding the server secret: 32 hex digits, the same on every "
            "node; several comma-separated during a rollover (the first makes cookies, all "
            "are accepted); unset: a random secret per start",
        ),
    ),
    doc="DNS Cookies (RFC 7873, server cookies per RFC 9018); a client with a valid server "
    "cookie is never rate-limited; absent = cookies are ignored",
)

DNS_SETTINGS = Table(
    "dns",
    (
        Field(
            "listen",
            ListOf(HostPortKind(), min_items=1, single_ok=True),
            default=_SETTINGS.dns_listen,
            doc="UDP and TCP on each",
        ),
        Field("max_udp_size", Int(512, 4096), default=_SETTINGS.max_udp_size),
        Field("tcp_idle_timeout", Duration(positive=True), default=_SETTINGS.tcp_idle_timeout),
        Field("tcp", TCP_SETTINGS),
        Field("rate_limit", RATE_LIMIT_SETTINGS),
        Field("cookies", COOKIE_SETTINGS),
        Field(
            "identity",
            Text(IDENTITY, "printable ASCII, at most 255 characters"),
            doc="answers NSID (RFC 5001) and CH TXT id.server / hostname.bind; "
            "absent = not answered",
        ),
        Field(
            "cache_entries",
            Int(1000, 10_000_000),
            default=_SETTINGS.cache_entries,
            doc="answers, parsed queries and client networks the answer cache keeps, each "
            "(read at start); about 1.5 KB of memory per answer with its query "
            "(docs/performance.md)",
        ),
        Field(
            "cache_memory",
            Size(1_000_000, 2**40),
            default=_SETTINGS.cache_memory,
            doc="memory the answer cache's tables may take together, as their entries are "
            "costed (read at start); when full, the entries least recently asked for go "
            "first, one at a time (CLOCK); `cache_entries` bounds each table too",
        ),
    ),
)

API_SETTINGS = Table(
    "api",
    (
        Field("listen", HostPortKind(), default=_SETTINGS.api_listen),
        Field(
            "token_env", Text(ENV_NAME, "an environment variable name"), default="GSLB_API_TOKEN"
        ),
        Field("token_file", Path()),
    ),
)

GEOIP_SETTINGS = Table(
    "geoip",
    (Field("database", Path(must_exist=True), doc="a MaxMind-format City or Country db"),),
)

STATE_SETTINGS = Table(
    "state",
    (
        Field(
            "path",
            Path(),
            doc="admin overrides are kept here; with a cluster: the last state seen, "
            "used while etcd is unreachable",
        ),
    ),
)

_CLUSTER = ClusterSettings(node="")
ETCD_SETTINGS = Table(
    "etcd",
    (
        Field(
            "endpoints",
            ListOf(HttpUrl(), min_items=1, single_ok=True),
            default=_CLUSTER.etcd_endpoints,
            doc="client URLs of the etcd members (http://host:port); tried in turn",
        ),
        Field(
            "prefix",
            Text(r"/[A-Za-z0-9_./-]*/", "a key prefix like /gslb/", max_len=200),
            default=_CLUSTER.prefix,
            doc="every key lives under it; one prefix = one cluster",
        ),
    ),
)

CLUSTER_SETTINGS = Table(
    "cluster",
    (
        Field(
            "node",
            Text(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", "a node name"),
            doc="this node's name; default: the host name",
        ),
        Field("etcd", ETCD_SETTINGS),
        Field(
            "health_quorum",
            Choice(HEALTH_QUORUMS),
            default=_CLUSTER.health_quorum,
            doc="an endpoint is down when any, a majority or all of the live nodes see it down",
        ),
        Field(
            "lease_ttl",
            Duration(lo=1.0, hi=300.0),
            default=_CLUSTER.lease_ttl,
            doc="a node that stops renewing its lease leaves the live set after this",
        ),
        Field(
            "audit_keep",
            Int(10, 100_000),
            default=_CLUSTER.audit_keep,
            doc="audit entries kept in etcd (older ones are deleted)",
        ),
    ),
    doc="several DNS nodes sharing admin state, audit and health verdicts through etcd v3; "
    "absent = one node, admin state in state.path",
)

SAFETY_SETTINGS = Table(
    "safety",
    (
        Field(
            "min_serving_regions",
            Int(0, 1000, label="regions"),
            default=SafetySettings().min_serving_regions,
            doc="an admin change that would leave a service (per address family) with fewer "
            "usable regions, and fewer than now, is refused with 409 unless forced",
        ),
    ),
    doc="rules an admin change must keep; absent = none",
)

QUERY_LOG_SETTINGS = Table(
    "query_log",
    (
        Field(
            "path",
            Path(),
            required=True,
            doc="the dnstap file (Frame Streams), rewritten at each start; with --workers "
            "each worker writes PATH.PID; read it with dnstap-read",
        ),
        Field(
            "sample",
            Int(1, 1_000_000_000, label="sample"),
            default=100,
            doc="one query in this many is logged, with its reply (1: every query)",
        ),
    ),
    doc="a sampled query log as dnstap, written by a thread: it never holds a query up "
    "(when the writer falls behind, records are dropped and counted); absent = off",
)

SETTINGS = Table(
    "gslb.yaml",
    (
        Field("dns", DNS_SETTINGS),
        Field("api", API_SETTINGS),
        Field("geoip", GEOIP_SETTINGS),
        Field("state", STATE_SETTINGS),
        Field("cluster", CLUSTER_SETTINGS),
        Field("safety", SAFETY_SETTINGS),
        Field("query_log", QUERY_LOG_SETTINGS),
        Field("workers", Int(1, 1024, label="workers"), default=_SETTINGS.workers),
    ),
    doc="server settings; every key has a default",
)
