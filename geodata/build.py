"""Build geodata/demo-city.mmdb from geodata/networks.csv.

Run as `.venv/bin/python geodata/build.py [--csv FILE] [--out FILE]`. The output uses the
GeoIP2-City schema (country.iso_code, continent.code, location.latitude/longitude,
city.names.en) in an IPv6 tree that holds the IPv4 networks under ::/96, as MaxMind's own
databases do. The same CSV always gives the same bytes: the build time in the metadata is
fixed and the networks are inserted in sorted order.
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

HERE = Path(__file__).resolve().parent
BUILD_EPOCH = 1_735_689_600  # 2025-01-01T00:00:00Z, fixed so that rebuilds are identical
CONTINENTS = frozenset({"AF", "AN", "AS", "EU", "NA", "OC", "SA"})
COLUMNS = ["network", "country", "continent", "lat", "lon", "city", "source"]
DESCRIPTION = (
    "gslb demo database: a few networks of well-known public services at approximate "
    "locations; not a GeoIP product"
)


@dataclass(frozen=True, slots=True)
class Row:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    country: str
    continent: str
    lat: float
    lon: float
    city: str


class _FixedEpochWriter(MMDBWriter):
    def _build_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = super()._build_meta()
        meta["build_epoch"] = BUILD_EPOCH
        return meta


def read_rows(path: Path) -> list[Row]:
    """The CSV's rows, checked; raises ValueError naming the line of the first bad one."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != COLUMNS:
            raise ValueError(f"{path}:1: columns must be {','.join(COLUMNS)}")
        rows = [_row(path, reader.line_num, raw) for raw in reader]
    _check_disjoint(path, rows)
    return sorted(rows, key=lambda row: (row.network.version, row.network))


def _row(path: Path, line: int, raw: dict[str, str]) -> Row:
    try:
        network = ipaddress.ip_network(raw["network"])
        country, continent = raw["country"], raw["continent"]
        if len(country) != 2 or not country.isascii() or not country.isupper():
            raise ValueError(f"country {country!r} is not an ISO alpha-2 code")
        if continent not in CONTINENTS:
            raise ValueError(f"continent {continent!r} is not one of {sorted(CONTINENTS)}")
        lat, lon = float(raw["lat"]), float(raw["lon"])
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError(f"coordinates {lat},{lon} out of range")
        if not raw["city"] or not raw["source"]:
            raise ValueError("city and source must not be empty")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}:{line}: {exc}") from exc
    return Row(network, country, continent, lat, lon, raw["city"])


def _check_disjoint(path: Path, rows: list[Row]) -> None:
    for i, row in enumerate(rows):
        for other in rows[i + 1 :]:
            if row.network.version == other.network.version and row.network.overlaps(other.network):
                raise ValueError(f"{path}: {row.network} overlaps {other.network}")


def record(row: Row) -> dict[str, Any]:
    return {
        "city": {"names": {"en": row.city}},
        "continent": {"code": row.continent},
        "country": {"iso_code": row.country},
        "location": {"latitude": row.lat, "longitude": row.lon},
    }


def build(rows: list[Row], out: Path) -> None:
    writer = _FixedEpochWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoIP2-City",
        languages=["en"],
        description={"en": DESCRIPTION},
    )
    for row in rows:
        writer.insert_network(IPSet([str(row.network)]), record(row))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    writer.to_db_file(str(tmp))
    tmp.replace(out)


def summary(rows: list[Row]) -> Iterator[str]:
    for row in rows:
        yield f"{row.network!s:20} {row.country} {row.continent} {row.city}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--csv", type=Path, default=HERE / "networks.csv")
    parser.add_argument("--out", type=Path, default=HERE / "demo-city.mmdb")
    parser.add_argument("-v", "--verbose", action="store_true", help="list the networks")
    args = parser.parse_args(argv)
    try:
        rows = read_rows(args.csv)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    build(rows, args.out)
    if args.verbose:
        print("\n".join(summary(rows)))
    print(f"wrote {args.out} ({len(rows)} networks, {args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
