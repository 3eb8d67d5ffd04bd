"""gslb.geo against the committed demo database, tiny databases built here, and (when it
is installed) the GeoLite2-City that the maxminddb-geolite2 package ships."""

from __future__ import annotations

import csv
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from gslb.geo import (
    GeoCacheInfo,
    GeoDatabase,
    GeoDatabaseError,
    Location,
    NoGeo,
    is_unlocatable,
    open_geo,
)
from gslb.geo_continents import CONTINENTS, COUNTRY_CONTINENT, continent_of
from gslb.geo_records import GeoFields, read_record

ROOT = Path(__file__).resolve().parent.parent
DEMO_DB = ROOT / "geodata" / "demo-city.mmdb"
DEMO_CSV = ROOT / "geodata" / "networks.csv"


@pytest.fixture
def demo() -> Iterator[GeoDatabase]:
    with GeoDatabase(str(DEMO_DB)) as db:
        yield db


def write_db(path: Path, entries: dict[str, Any], *, ip_version: int = 6) -> str:
    writer = MMDBWriter(
        ip_version=ip_version,
        ipv4_compatible=ip_version == 6,
        database_type="test",
        languages=["en"],
        description={"en": "test"},
    )
    for network, data in entries.items():
        writer.insert_network(IPSet([network]), data)
    writer.to_db_file(str(path))
    return str(path)


@pytest.mark.parametrize(
    ("address", "country", "continent", "prefix_len", "network"),
    [
        ("81.2.69.142", "GB", "EU", 24, "81.2.69.0/24"),
        ("8.8.8.8", "US", "NA", 24, "8.8.8.0/24"),
        ("1.1.1.1", "AU", "OC", 24, "1.1.1.0/24"),
        ("200.160.2.3", "BR", "SA", 20, "200.160.0.0/20"),
        ("196.216.2.1", "MU", "AF", 24, "196.216.2.0/24"),
        ("202.12.27.33", "JP", "AS", 24, "202.12.27.0/24"),
        ("2001:4860:4860::8888", "US", "NA", 32, "2001:4860::/32"),
        ("2001:67c:2e8:22::c100:68b", "NL", "EU", 48, "2001:67c:2e8::/48"),
        ("2001:dc3::35", "JP", "AS", 32, "2001:dc3::/32"),
        ("::ffff:8.8.8.8", "US", "NA", 24, "8.8.8.0/24"),  # IPv4-mapped: IPv4 prefix
    ],
)
def test_demo_db_places_known_networks(
    demo: GeoDatabase, address: str, country: str, continent: str, prefix_len: int, network: str
) -> None:
    loc = demo.lookup(address)
    assert loc is not None
    assert (loc.country, loc.continent, loc.prefix_len, loc.network) == (
        country,
        continent,
        prefix_len,
        network,
    )
    assert loc.lat is not None and -90 <= loc.lat <= 90
    assert loc.lon is not None and -180 <= loc.lon <= 180


def test_demo_db_coordinates_of_london(demo: GeoDatabase) -> None:
    assert demo.lookup("81.2.69.142") == Location("GB", "EU", 51.5142, -0.0931, 24, "81.2.69.0/24")


def test_address_objects_are_accepted(demo: GeoDatabase) -> None:
    by_text = demo.lookup("1.1.1.1")
    assert demo.lookup(ipaddress.IPv4Address("1.1.1.1")) == by_text
    assert demo.lookup(ipaddress.IPv6Address("::ffff:1.1.1.1")) == by_text
    v6 = demo.lookup(ipaddress.IPv6Address("2606:4700:4700::1111"))
    assert v6 is not None and (v6.country, v6.network) == ("US", "2606:4700::/32")


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "127.0.0.1",
        "169.254.1.1",
        "0.0.0.0",
        "224.0.0.251",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "fe80::1%eth0",
        "fd00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "100::1",  # discard-only, reserved
    ],
)
def test_unlocatable_addresses_skip_the_database(demo: GeoDatabase, address: str) -> None:
    assert demo.lookup(address) is None
    info = demo.cache_info()
    assert (info.skipped, info.misses, info.size) == (1, 0, 0)


def test_unlocatable_agrees_with_ipaddress_on_the_edges() -> None:
    for text in ["9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "172.15.255.255"]:
        assert not is_unlocatable(ipaddress.ip_address(text)), text
    for text in ["172.32.0.0", "169.253.255.255", "192.167.255.255", "223.255.255.255"]:
        assert not is_unlocatable(ipaddress.ip_address(text)), text
    for text in ["1fff:ffff::1", "4000::1"]:
        assert is_unlocatable(ipaddress.ip_address(text)), text
    assert not is_unlocatable(ipaddress.ip_address("3fff:ffff::1"))


def test_public_address_missing_from_db_is_none_and_cached(demo: GeoDatabase) -> None:
    assert demo.lookup("5.5.5.5") is None
    assert demo.lookup("5.5.5.6") is None  # same empty region of the tree
    info = demo.cache_info()
    assert (info.misses, info.hits, info.skipped, info.size) == (1, 1, 0, 1)
    assert demo.lookup("2a00:1450::1") is None  # in the demo db's tree, nothing there
    assert demo.cache_info().misses == 2


def test_cache_serves_the_same_network_without_a_lookup(demo: GeoDatabase) -> None:
    first = demo.lookup("81.2.69.142")
    assert demo.cache_info() == GeoCacheInfo(0, 1, 0, 1, 100_000, 0)
    second = demo.lookup("81.2.69.7")
    mapped = demo.lookup("::ffff:81.2.69.200")
    assert first is second is mapped  # the cached value itself
    assert demo.cache_info() == GeoCacheInfo(2, 1, 0, 1, 100_000, 0)
    other = demo.lookup("81.2.70.1")  # outside the /24: a lookup of its own
    assert other is None
    assert demo.cache_info().misses == 2


def test_cache_keeps_families_and_prefix_lengths_apart(demo: GeoDatabase) -> None:
    addresses = ["8.8.8.8", "200.160.15.255", "2001:4860::1", "2620:fe::9", "8.8.4.4", "1.1.1.2"]
    expected = [demo.lookup(a) for a in addresses]
    assert [demo.lookup(a) for a in reversed(addresses)] == expected[::-1]
    info = demo.cache_info()
    assert (info.misses, info.hits, info.size) == (6, 6, 6)
    networks = [loc.network for loc in expected if loc is not None]
    assert networks == [
        "8.8.8.0/24",
        "200.160.0.0/20",
        "2001:4860::/32",
        "2620:fe::/48",
        "8.8.4.0/24",
        "1.1.1.0/24",
    ]


def _demo_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    with DEMO_CSV.open(newline="", encoding="utf-8") as handle:
        return [ipaddress.ip_network(row["network"]) for row in csv.DictReader(handle)]


def _address_in(network: ipaddress.IPv4Network | ipaddress.IPv6Network, offset: int) -> str:
    return str(network[offset % network.num_addresses])


_ADDRESSES = st.one_of(
    st.builds(_address_in, st.sampled_from(_demo_networks()), st.integers(0, 2**64)),
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
    st.integers(0, 2**32 - 1).map(lambda n: f"::ffff:{ipaddress.IPv4Address(n)}"),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_ADDRESSES, min_size=1, max_size=40))
def test_cached_answers_equal_uncached_answers(addresses: list[str]) -> None:
    with GeoDatabase(str(DEMO_DB)) as cached, GeoDatabase(str(DEMO_DB), cache_size=1) as bare:
        for address in addresses + addresses[::-1]:
            assert cached.lookup(address) == bare.lookup(address), address
        info = cached.cache_info()
        assert info.hits + info.misses + info.skipped == 2 * len(addresses)
        assert info.misses <= len(addresses)


def test_cache_is_bounded() -> None:
    with GeoDatabase(str(DEMO_DB), cache_size=3) as db:
        for address in ["8.8.8.8", "1.1.1.1", "9.9.9.9", "77.88.8.8", "8.8.8.9"]:
            assert db.lookup(address) is not None
        info = db.cache_info()
        assert info.size <= 3
        assert info.evictions == 2  # one at a time: 8.8.8.0/24, then 1.1.1.0/24
        assert (info.misses, info.hits) == (5, 0)  # 8.8.8.9 came after 8.8.8.0/24 went


def test_invalid_text_raises_value_error(demo: GeoDatabase) -> None:
    for bad in ["", "not-an-ip", "1.2.3", "1.2.3.4.5", "::g"]:
        with pytest.raises(ValueError):
            demo.lookup(bad)


def test_open_geo_and_nogeo(tmp_path: Path) -> None:
    nogeo = open_geo(None)
    assert isinstance(nogeo, NoGeo)
    assert nogeo.lookup("8.8.8.8") is None
    assert nogeo.lookup(ipaddress.ip_address("2001:4860::1")) is None
    assert nogeo.cache_info() == GeoCacheInfo(0, 0, 0, 0, 0, 0)
    with open_geo(str(DEMO_DB)) as db:
        assert isinstance(db, GeoDatabase)
        assert db.database_type == "GeoIP2-City"
        loc = db.lookup("8.8.8.8")
        assert loc is not None and loc.country == "US"
    with pytest.raises(GeoDatabaseError, match="cannot open GeoIP database"):
        open_geo(str(tmp_path / "missing.mmdb"))
    junk = tmp_path / "junk.mmdb"
    junk.write_bytes(b"this is not an mmdb file" * 10)
    with pytest.raises(GeoDatabaseError):
        GeoDatabase(str(junk))


def test_ipinfo_flat_schema(tmp_path: Path) -> None:
    path = write_db(
        tmp_path / "ipinfo.mmdb",
        {
            # IPinfo Lite: codes in *_code, names in country/continent
            "8.8.8.0/24": {
                "country": "United States",
                "country_code": "US",
                "continent": "North America",
                "continent_code": "NA",
                "asn": "AS15169",
            },
            # IPinfo's older free country database: codes in country/continent
            "1.1.1.0/24": {"country": "AU", "country_name": "Australia", "continent": "OC"},
            # IPinfo city shape: lat/lng, sometimes text; no continent at all
            "81.2.69.0/24": {"city": "London", "country": "GB", "lat": "51.5085", "lng": -0.1257},
            # other flat files: latitude/longitude
            "2001:4860::/32": {"country_code": "US", "latitude": 37.4, "longitude": -122.1},
        },
    )
    with GeoDatabase(path) as db:
        assert db.lookup("8.8.8.8") == Location("US", "NA", None, None, 24, "8.8.8.0/24")
        assert db.lookup("1.1.1.1") == Location("AU", "OC", None, None, 24, "1.1.1.0/24")
        assert db.lookup("81.2.69.142") == Location(
            "GB", "EU", 51.5085, -0.1257, 24, "81.2.69.0/24"
        )
        assert db.lookup("2001:4860::8888") == Location(
            "US", "NA", 37.4, -122.1, 32, "2001:4860::/32"
        )


def test_maxmind_country_shape_and_ipv4_only_db(tmp_path: Path) -> None:
    path = write_db(
        tmp_path / "country.mmdb",
        {
            "81.2.69.0/24": {"continent": {"code": "EU"}, "country": {"iso_code": "GB"}},
            # no physical country: the registered one stands in, continent from the table
            "9.9.9.0/24": {"registered_country": {"iso_code": "CH"}},
            "77.88.8.0/24": {"traits": {"is_anycast": True}},  # nothing usable
        },
        ip_version=4,
    )
    with GeoDatabase(path) as db:
        assert db.lookup("81.2.69.1") == Location("GB", "EU", None, None, 24, "81.2.69.0/24")
        assert db.lookup("9.9.9.9") == Location("CH", "EU", None, None, 24, "9.9.9.0/24")
        assert db.lookup("77.88.8.8") is None
        assert db.lookup("2001:4860::1") is None  # an IPv4-only db cannot place IPv6
        assert db.lookup("::ffff:81.2.69.2") is not None  # but mapped IPv4 it can


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (None, None),
        ("text", None),
        ({}, None),
        ({"country": {"iso_code": "de"}}, GeoFields("DE", "EU", None, None)),
        ({"country": "Germany"}, None),  # a name, not a code
        ({"country_code": "BR"}, GeoFields("BR", "SA", None, None)),
        ({"country_code": "ZZ"}, GeoFields("ZZ", None, None, None)),
        ({"continent": {"code": "AN"}}, GeoFields(None, "AN", None, None)),
        ({"continent": "Europe", "country": "FR"}, GeoFields("FR", "EU", None, None)),
        ({"location": {"latitude": 10, "longitude": 20}}, GeoFields(None, None, 10.0, 20.0)),
        ({"location": {"latitude": 91.0, "longitude": 0.0}}, None),  # out of range
        ({"location": {"latitude": 1.0}}, None),  # half a coordinate
        ({"lat": "nan", "lng": "0"}, None),
        ({"lat": True, "lng": 1.0}, None),
        ({"country": "JP", "lat": "35.6", "lng": "139.7"}, GeoFields("JP", "AS", 35.6, 139.7)),
    ],
)
def test_read_record(record: object, expected: GeoFields | None) -> None:
    assert read_record(record) == expected


def test_continent_table_is_complete_and_consistent() -> None:
    assert len(COUNTRY_CONTINENT) == 250  # 249 ISO 3166-1 codes and XK
    assert set(COUNTRY_CONTINENT.values()) == CONTINENTS
    assert all(len(c) == 2 and c.isupper() for c in COUNTRY_CONTINENT)
    assert continent_of(None) is None
    assert continent_of("QQ") is None
    samples = {"US": "NA", "BR": "SA", "GB": "EU", "CN": "AS", "NG": "AF", "AU": "OC"}
    assert {c: continent_of(c) for c in samples} == samples
    assert continent_of("AQ") == "AN"


def test_demo_csv_agrees_with_continent_table_and_db() -> None:
    with DEMO_CSV.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 23
    assert {row["continent"] for row in rows} >= CONTINENTS - {"AN"}
    with GeoDatabase(str(DEMO_DB)) as db:
        for row in rows:
            assert continent_of(row["country"]) == row["continent"], row
            network = ipaddress.ip_network(row["network"])
            loc = db.lookup(network[1])
            assert loc is not None, row
            assert loc.network == str(network), "db is stale: run geodata/build.py"
            assert (loc.country, loc.lat, loc.lon) == (
                row["country"],
                float(row["lat"]),
                float(row["lon"]),
            ), "db is stale: run geodata/build.py"


def test_build_is_deterministic(tmp_path: Path) -> None:
    import runpy

    build = runpy.run_path(str(ROOT / "geodata" / "build.py"))
    out = tmp_path / "rebuilt.mmdb"
    assert build["main"](["--out", str(out)]) == 0
    assert out.read_bytes() == DEMO_DB.read_bytes()


def test_geoip2_reader_reads_demo_db() -> None:
    geoip2_database = pytest.importorskip("geoip2.database")
    with geoip2_database.Reader(str(DEMO_DB)) as reader:
        city = reader.city("81.2.69.142")
    assert (city.country.iso_code, city.continent.code, city.city.name) == ("GB", "EU", "London")
    assert str(city.traits.network) == "81.2.69.0/24"


def test_packaged_geolite2_if_installed() -> None:
    packaged = pytest.importorskip("_maxminddb_geolite2")
    with GeoDatabase(packaged.geolite2_database()) as db:
        assert db.database_type == "GeoLite2-City"
        gb = db.lookup("81.2.69.142")
        assert gb is not None and (gb.country, gb.continent) == ("GB", "EU")
        assert gb.lat is not None and gb.lon is not None
        au = db.lookup("1.1.1.1")
        assert au is not None and (au.country, au.continent) == ("AU", "OC")
        us = db.lookup("2001:4860:4860::8888")
        assert us is not None and us.country == "US" and us.network.startswith("2001:4860:")
        # IPv4 in this IPv6 database reports IPv4 prefix lengths, mapped or not
        v4 = db.lookup("8.8.8.8")
        assert v4 is not None and v4.prefix_len <= 32
        assert db.lookup("::ffff:8.8.8.8") is v4


def test_a_burst_of_new_networks_does_not_evict_the_hot_ones(tmp_path: Path) -> None:
    """Clock eviction: networks asked for again survive a burst of one-off networks
    (with a clear-all cache every hot network would be a miss again after each clear)."""
    entries = {f"11.{i // 256}.{i % 256}.0/24": {"country": {"iso_code": "US"}} for i in range(700)}
    bound = 100
    with GeoDatabase(write_db(tmp_path / "many.mmdb", entries), cache_size=bound) as db:
        hot = [f"11.0.{i}.1" for i in range(10)]
        for address in hot:
            assert db.lookup(address) is not None
        before = db.cache_info()
        for i in range(20, 700):  # 680 one-off networks, the hot set asked for now and then
            assert db.lookup(f"11.{i // 256}.{i % 256}.9") is not None
            if i % 20 == 0:
                for address in hot:
                    db.lookup(address)
            assert db.cache_info().size <= bound
        after = db.cache_info()
        assert after.misses - before.misses == 680  # the hot networks never missed again
        assert after.evictions == 680 - (bound - len(hot))
        assert after.size == bound
