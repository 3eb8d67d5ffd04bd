"""Reading one raw mmdb record, whichever vendor's schema it follows.

Two record shapes are in use for MaxMind-format databases:

* nested, as MaxMind GeoIP2/GeoLite2 City and Country and DB-IP lite use::

      {"country": {"iso_code": "GB"}, "continent": {"code": "EU"},
       "location": {"latitude": 51.5, "longitude": -0.09}}

* flat, as IPinfo uses (`country_code`/`continent_code` with names in `country`/`continent`
  in IPinfo Lite; codes in `country`/`continent` in its older free country database;
  `lat`/`lng` in its city databases), and as other flat files use (`latitude`/`longitude`).

This module only interprets a decoded record; it does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gslb.geo_continents import CONTINENTS, continent_of


@dataclass(frozen=True, slots=True)
class GeoFields:
    """What steering needs from one record; each field None when the record lacks it."""

    country: str | None
    continent: str | None
    lat: float | None
    lon: float | None
    subdivision: str | None = None  # ISO 3166-2, e.g. "US-CA": the first (largest) one


def read_record(record: object) -> GeoFields | None:
    """The fields of a record as maxminddb decodes it (dicts), or None when it says
    nothing usable."""
    if not isinstance(record, dict):
        return None
    country = _country(record)
    continent = _continent(record) or continent_of(country)
    lat, lon = _coordinates(record)
    if country is None and continent is None and lat is None:
        return None
    return GeoFields(country, continent, lat, lon, _subdivision(record, country))


def _subdivision(record: Mapping[str, object], country: str | None) -> str | None:
    """GeoIP2-City's `subdivisions[0].iso_code` (the state, province, ...) as "CC-XX"."""
    found = record.get("subdivisions")
    if country is None or not isinstance(found, list) or not found:
        return None
    first = found[0]
    code = first.get("iso_code") if isinstance(first, dict) else None
    if not isinstance(code, str) or not 1 <= len(code) <= 3 or not code.isalnum():
        return None
    return f"{country}-{code.upper()}"


def _country(record: Mapping[str, object]) -> str | None:
    # The physical country first; the country where the block is registered is a
    # fallback that MaxMind fills even where it cannot place a network (anycast, satellite).
    for key in ("country", "registered_country"):
        value = record.get(key)
        if isinstance(value, dict):
            code = _country_code(value.get("iso_code"))
            if code is not None:
                return code
    flat = _country_code(record.get("country_code"))
    if flat is not None:
        return flat
    return _country_code(record.get("country"))  # a code here, or a name that is ignored


def _continent(record: Mapping[str, object]) -> str | None:
    value = record.get("continent")
    if isinstance(value, dict):
        return _continent_code(value.get("code"))
    return _continent_code(record.get("continent_code")) or _continent_code(value)


def _coordinates(record: Mapping[str, object]) -> tuple[float | None, float | None]:
    location = record.get("location")
    source = location if isinstance(location, dict) else record
    lat = _number(source.get("latitude"))
    lon = _number(source.get("longitude"))
    if lat is None and lon is None:
        lat = _number(source.get("lat"))
        lon = _number(source.get("lng"))
    if lat is None or lon is None or not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None, None
    return lat, lon


def _country_code(value: object) -> str | None:
    if isinstance(value, str) and len(value) == 2 and value.isascii() and value.isalpha():
        return value.upper()
    return None


def _continent_code(value: object) -> str | None:
    if isinstance(value, str):
        code = value.upper()
        if code in CONTINENTS:
            return code
    return None


def _number(value: object) -> float | None:
    # IPinfo stores coordinates as text in some of its files; bools are not numbers here.
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if number == number else None  # NaN is no coordinate
