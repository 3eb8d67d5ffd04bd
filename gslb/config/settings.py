"""gslb.yaml, parsed → `ServerSettings` (every key has a default)."""

from __future__ import annotations

import socket

from gslb.config.tables import Parsed
from gslb.model import (
    ClusterSettings,
    CookieSettings,
    QueryLogSettings,
    RateLimitSettings,
    SafetySettings,
    ServerSettings,
    TcpSettings,
)


def build_cluster(parsed: Parsed | None) -> ClusterSettings | None:
    if parsed is None:
        return None
    etcd: Parsed | None = parsed["etcd"]
    defaults = ClusterSettings(node="")
    return ClusterSettings(
        node=parsed["node"] or socket.gethostname(),
        etcd_endpoints=tuple(url for url, _ in etcd["endpoints"])
        if etcd and etcd.given("endpoints")
        else defaults.etcd_endpoints,
        prefix=etcd["prefix"] if etcd else defaults.prefix,
        health_quorum=parsed["health_quorum"],
        lease_ttl=parsed["lease_ttl"],
        audit_keep=parsed["audit_keep"],
    )


def build_tcp(parsed: Parsed | None) -> TcpSettings:
    if parsed is None:
        return TcpSettings()
    return TcpSettings(
        max_connections=parsed["max_connections"],
        max_per_client=parsed["max_per_client"],
        io_timeout=parsed["io_timeout"],
    )


def build_rate_limit(parsed: Parsed | None) -> RateLimitSettings | None:
    if parsed is None:
        return None
    return RateLimitSettings(
        responses_per_second=float(parsed["responses_per_second"]),
        window=parsed["window"],
        slip=parsed["slip"],
        ipv4_prefix=parsed["ipv4_prefix"],
        ipv6_prefix=parsed["ipv6_prefix"],
        exempt=tuple(parsed["exempt"]),
        max_accounts=parsed["max_accounts"],
    )


def build_cookies(parsed: Parsed | None) -> CookieSettings | None:
    return None if parsed is None else CookieSettings(secret_env=parsed["secret_env"])


def build_settings(parsed: Parsed | None) -> ServerSettings:
    defaults = ServerSettings()
    if parsed is None:
        return defaults
    dns: Parsed | None = parsed["dns"]
    api: Parsed | None = parsed["api"]
    geoip: Parsed | None = parsed["geoip"]
    state: Parsed | None = parsed["state"]
    return ServerSettings(
        dns_listen=dns["listen"] if dns else defaults.dns_listen,
        api_listen=api["listen"] if api else defaults.api_listen,
        token_env=api["token_env"] if api else defaults.token_env,
        token_file=api["token_file"] if api else defaults.token_file,
        geoip_database=geoip["database"] if geoip else defaults.geoip_database,
        state_path=state["path"] if state else defaults.state_path,
        max_udp_size=dns["max_udp_size"] if dns else defaults.max_udp_size,
        tcp_idle_timeout=dns["tcp_idle_timeout"] if dns else defaults.tcp_idle_timeout,
        tcp=build_tcp(dns["tcp"] if dns else None),
        rate_limit=build_rate_limit(dns["rate_limit"] if dns else None),
        cookies=build_cookies(dns["cookies"] if dns else None),
        identity=dns["identity"] if dns else None,
        cache_entries=dns["cache_entries"] if dns else defaults.cache_entries,
        cache_memory=dns["cache_memory"] if dns else defaults.cache_memory,
        workers=parsed["workers"],
        cluster=build_cluster(parsed["cluster"]),
        query_log=QueryLogSettings(parsed["query_log"]["path"], parsed["query_log"]["sample"])
        if parsed["query_log"] is not None
        else None,
        safety=SafetySettings(parsed["safety"]["min_serving_regions"])
        if parsed["safety"] is not None
        else defaults.safety,
    )
