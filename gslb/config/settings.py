"""gslb.yaml, parsed → `ServerSettings` (every key has a default)."""

from __future__ import annotations

from gslb.config.tables import Parsed
from gslb.model import ServerSettings


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
        cache_entries=dns["cache_entries"] if dns else defaults.cache_entries,
        workers=parsed["workers"],
    )
