"""What `gslb serve` logs when it starts: what an operator checks first after a deploy.

Which zones, how many services and regions, which GeoIP database and how old it is, where
the admin token came from (never the token), cluster mode. Pure: the lines, not the logging.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gslb.geo import GeoDatabase, NoGeo
from gslb.model import Config


def built(epoch: int) -> str:
    """A database's build_epoch as a UTC time."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def startup_lines(
    config: Config, geo: GeoDatabase | NoGeo, token_source: str | None, workers: int
) -> list[str]:
    """One log line per fact; `token_source` as `gslb.auth.find_token` gives it."""
    zones = [zone.name.rstrip(".") for zone in config.zones]
    services = sum(len(zone.services) for zone in config.zones)
    lines = [
        f"serving {len(zones)} zone(s): {', '.join(zones)}; "
        f"{services} service(s), {len(config.regions)} region(s)"
    ]
    if isinstance(geo, GeoDatabase):
        lines.append(
            f"GeoIP database {geo.path} ({geo.database_type}, built {built(geo.build_epoch)})"
        )
    else:
        lines.append("GeoIP: no database configured; every service answers in its region order")
    if token_source is not None:
        lines.append(f"API token from the {token_source}")
    cluster = config.settings.cluster
    if cluster is not None:
        lines.append(
            f"cluster mode: node {cluster.node}, etcd {', '.join(cluster.etcd_endpoints)}, "
            f"prefix {cluster.prefix}, health quorum {cluster.health_quorum}"
        )
    if workers > 1:
        lines.append(f"DNS answered by {workers} worker processes")
    return lines
