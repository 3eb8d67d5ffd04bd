"""gslb.config: the sample directory and the values a good config turns into."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gslb.config import load_config, load_region_proxy
from gslb.config.rdata import txt
from gslb.errors import ConfigError
from gslb.model import CheckSpec, Config, Endpoint, HostPort, ProxyRoute

SAMPLE = Path(__file__).resolve().parent.parent / "zones"

ZONE = """\
zone: Example.COM
ns: [ns1.example.com]
records:
  ns1: {A: 192.0.2.1}
services:
  www: {regions: [east]}
"""
EAST = """\
region: east
services:
  www.example.com: [192.0.2.10]
"""


def write(directory: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return str(directory)


def load(tmp_path: Path, **files: str) -> Config:
    """Load the minimal config above with files replaced or added.

    `zone`, `east` and `settings` name the three usual files; any other keyword is
    a path inside the directory (pass those with **{"regions/west.yaml": ...}).
    """
    base = {"example.com.yaml": ZONE, "regions/east.yaml": EAST}
    renames = {"zone": "example.com.yaml", "east": "regions/east.yaml", "settings": "gslb.yaml"}
    for key, text in files.items():
        base[renames.get(key, key)] = text
    return load_config(write(tmp_path, base))


def test_sample_directory_loads_with_the_values_written() -> None:
    config = load_config(str(SAMPLE))
    assert config.directory == str(SAMPLE)
    settings = config.settings
    assert settings.dns_listen == (HostPort("127.0.0.1", 5353),)
    assert settings.api_listen == HostPort("127.0.0.1", 8053)
    assert settings.geoip_database == str(SAMPLE.parent / "geodata" / "demo-city.mmdb")
    assert settings.state_path == str(SAMPLE.parent / "state.json")
    assert settings.max_udp_size == 1232
    assert settings.cache_entries == 100_000  # the default

    (zone,) = config.zones
    assert zone.name == "gslb.example.com."
    assert zone.file == str(SAMPLE / "gslb.example.com.yaml")
    assert zone.ns == ("ns1.gslb.example.com.", "ns2.gslb.example.com.")
    assert zone.soa.rname == "hostmaster.example.com."
    assert zone.soa.serial == 2026112601
    assert zone.soa.ttl == 300
    found = {(r.name, r.rtype, r.rdata) for r in zone.records}
    assert {
        ("gslb.example.com.", "NS", "ns2.gslb.example.com."),
        ("ns1.gslb.example.com.", "AAAA", "2001:db8::53"),
        ("gslb.example.com.", "MX", "10 mail.example.com."),
        ("gslb.example.com.", "TXT", '"v=spf1 -all"'),
        ("gslb.example.com.", "CAA", '0 issue "letsencrypt.org"'),
        ("docs.gslb.example.com.", "CNAME", "www.gslb.example.com."),
        ("_sip._tcp.gslb.example.com.", "SRV", "10 60 5060 sip.gslb.example.com."),
    } <= found
    assert zone.records[0].rtype == "SOA"
    www = zone.services["www.gslb.example.com."]
    assert (www.ttl, www.policy, www.select, www.answers) == (30, "geo", "weighted", 2)
    assert www.regions == ("us-east", "eu-west", "ap-southeast")
    assert zone.services["api.gslb.example.com."].policy == "failover"

    assert list(config.regions) == ["ap-southeast", "eu-west", "us-east"]
    eu = config.regions["eu-west"]
    assert eu.file == str(SAMPLE / "regions" / "eu-west.yaml")
    assert (eu.lat, eu.lon) == (53.35, -6.26)
    assert eu.continents == frozenset({"EU", "AF"})
    assert eu.countries == frozenset({"TR"})
    assert eu.health is None
    assert eu.endpoints["www.gslb.example.com."] == (
        Endpoint("198.51.100.10", 4, 3),
        Endpoint("198.51.100.11", 4, 1),
        Endpoint("2001:db8:e::10", 6, 1),
    )
    assert eu.proxy is not None
    assert eu.proxy.method == "least_conn"
    assert eu.proxy.listen == HostPort("127.0.0.1", 8082)
    assert [(b.name, b.host, b.port, b.weight) for b in eu.proxy.backends] == [
        ("euw1", "127.0.0.1", 18121, 2),
        ("euw2", "127.0.0.1", 18122, 1),
    ]
    assert eu.proxy.drain_timeout == 30.0
    assert load_region_proxy(str(SAMPLE), "us-east").method == "round_robin"


def test_defaults_and_name_spellings(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        zone="""\
        zone: Example.COM.
        ttl: 0300
        ns: [NS1.example.com.]
        soa: {rname: "Host.Master@example.com", serial: 0}
        records:
          "@": {MX: "10 mail", ttl: 60, NS: [ns2.example.net]}
          ns1: {A: 192.0.2.1}
          mail.example.com.: {AAAA: "2001:DB8::0:1"}
          _sip._tcp: {SRV: "1 2 5060 sip"}
          alias: {CNAME: "@"}
        services:
          www: {}
          api.example.com.: {policy: weighted, regions: {east: 5}}
        """,
        east=EAST + "  api.example.com: [192.0.2.20]\n",
    )
    (zone,) = config.zones
    assert zone.name == "example.com."
    assert zone.ttl == 300  # decimal, though YAML 1.1 reads 0300 as octal
    assert zone.soa.mname == "ns1.example.com."  # the first name server
    assert zone.soa.rname == "host\\.master.example.com."
    assert zone.soa.serial == 0
    assert zone.ns == ("ns1.example.com.", "ns2.example.net.")
    records = {(r.name, r.rtype): r for r in zone.records}
    assert records[("example.com.", "MX")].rdata == "10 mail.example.com."
    assert records[("example.com.", "MX")].ttl == 60
    assert records[("example.com.", "NS")].ttl == 60  # one TTL for the apex NS set
    assert records[("mail.example.com.", "AAAA")].rdata == "2001:db8::1"
    assert records[("_sip._tcp.example.com.", "SRV")].rdata == "1 2 5060 sip.example.com."
    assert records[("alias.example.com.", "CNAME")].rdata == "example.com."
    www = zone.services["www.example.com."]
    assert (www.ttl, www.policy, www.select, www.answers) == (30, "geo", "all", 8)
    assert www.regions == ("east",)  # all regions by default
    assert dict(www.region_weights) == {"east": 1}
    api = zone.services["api.example.com."]
    assert dict(api.region_weights) == {"east": 5}


def test_regions_default_to_all_in_name_order_with_their_weights(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        zone=ZONE.replace("www: {regions: [east]}", "www: {policy: weighted}"),
        **{
            "regions/west.yaml": """\
            region: west
            weight: 7
            services: {www.example.com.: ["2001:db8::7"]}
            """
        },
    )
    www = config.zones[0].services["www.example.com."]
    assert www.regions == ("east", "west")
    assert dict(www.region_weights) == {"east": 1, "west": 7}
    assert config.regions["west"].endpoints["www.example.com."] == (Endpoint("2001:db8::7", 6),)


def test_health_checks_durations_and_endpoint_overrides(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        east="""\
        region: east
        location: {lat: -33.9, lon: 151}
        serves: {continents: [oc], countries: [au, NO]}
        health: {type: tcp, port: 8443, interval: 1m30s, timeout: 500ms, rise: 1, fall: 5}
        services:
          www.example.com:
            - 192.0.2.10
            - {address: 192.0.2.11, weight: 9, health: {type: http, path: /ready}}
        """,
    )
    east = config.regions["east"]
    assert east.continents == frozenset({"OC"})
    assert east.countries == frozenset({"AU", "NO"})  # NO is Norway, not YAML's false
    assert east.lon == 151.0
    region_check = CheckSpec(kind="tcp", port=8443, interval=90.0, timeout=0.5, rise=1, fall=5)
    assert east.health == region_check
    plain, tuned = east.endpoints["www.example.com."]
    assert plain == Endpoint("192.0.2.10", 4, 1, None)
    assert tuned.weight == 9
    assert tuned.health == CheckSpec(
        kind="http", path="/ready", port=8443, interval=90.0, timeout=0.5, rise=1, fall=5
    )


def test_a_short_interval_alone_lowers_the_default_timeout(tmp_path: Path) -> None:
    config = load(tmp_path, east=EAST + "health: {interval: 0.2}\n")
    health = config.regions["east"].health
    assert health is not None
    assert (health.interval, health.timeout) == (0.2, 0.2)


def test_proxy_block_maps_to_proxy_spec(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        east=EAST
        + """\
proxy:
  listen: 127.0.0.1:0
  admin: "[::1]:9000"
  method: sticky
  backends:
    - url: http://127.0.0.1:18000
    - {name: b2, url: "http://[::1]:18001/", weight: 4}
  health: {type: tcp, interval: 2s, timeout: 1s}
  drain_timeout: 0
  drain_grace: 2s
  drain_close_spread: 500ms
  timeouts: {connect: 250ms, read: 5, total: 1m, client: 3s, idle: 1h}
  limits: {max_header_bytes: 8192, max_headers: 50}
  passive: {fail_threshold: 2, cooldown: 2s}
  panic_threshold: 25%
  sticky: {cookie: SRV}
""",
    )
    proxy = config.regions["east"].proxy
    assert proxy is not None
    assert proxy.listen == HostPort("127.0.0.1", 0)
    assert proxy.admin == HostPort("::1", 9000)
    assert proxy.method == "sticky"
    assert [(b.name, b.url, b.host, b.port, b.weight) for b in proxy.backends] == [
        ("127.0.0.1:18000", "http://127.0.0.1:18000", "127.0.0.1", 18000, 1),
        ("b2", "http://[::1]:18001", "::1", 18001, 4),
    ]
    assert proxy.health == CheckSpec(kind="tcp", interval=2.0, timeout=1.0)
    assert proxy.drain_timeout == 0.0
    assert (
        proxy.connect_timeout,
        proxy.read_timeout,
        proxy.total_timeout,
        proxy.client_timeout,
        proxy.idle_timeout,
    ) == (0.25, 5.0, 60.0, 3.0, 3600.0)
    assert (proxy.max_header_bytes, proxy.max_headers) == (8192, 50)
    assert (proxy.fail_threshold, proxy.cooldown, proxy.sticky_cookie) == (2, 2.0, "SRV")
    assert proxy.panic_threshold == 0.25
    assert (proxy.drain_grace, proxy.drain_close_spread) == (2.0, 0.5)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("", None),
        ("  access_log: {}\n", ("-", "json")),
        ('  access_log: {path: "-", format: json}\n', ("-", "json")),
        ("  access_log: {path: logs/access.log, format: combined}\n", ("logs", "combined")),
    ],
)
def test_proxy_access_log(tmp_path: Path, written: str, expected: tuple[str, str] | None) -> None:
    block = "proxy:\n  listen: 127.0.0.1:0\n  backends: [{url: http://127.0.0.1:1}]\n"
    proxy = load(tmp_path, east=EAST + block + written).regions["east"].proxy
    assert proxy is not None
    if expected is None:
        assert proxy.access_log is None
        return
    assert proxy.access_log is not None
    path = expected[0] if expected[0] == "-" else str(tmp_path / "logs" / "access.log")
    assert (proxy.access_log.path, proxy.access_log.format) == (path, expected[1])


def test_proxy_connection_caps(tmp_path: Path) -> None:
    block = "proxy:\n  listen: 127.0.0.1:0\n  backends: [{url: http://127.0.0.1:1}]\n"
    proxy = load(tmp_path, east=EAST + block).regions["east"].proxy
    assert proxy is not None
    assert (proxy.max_connections, proxy.queue_timeout) == (10000, 5.0)
    assert proxy.backends[0].max_connections == 0  # no cap unless written
    capped = (
        "proxy:\n  listen: 127.0.0.1:0\n  max_connections: 5\n  queue_timeout: 250ms\n"
        "  backends: [{url: http://127.0.0.1:1, max_connections: 200}]\n"
    )
    proxy = load(tmp_path / "capped", east=EAST + capped).regions["east"].proxy
    assert proxy is not None
    assert (proxy.max_connections, proxy.queue_timeout) == (5, 0.25)
    assert proxy.backends[0].max_connections == 200
    with pytest.raises(ConfigError, match="out of range"):
        load(tmp_path / "zero", east=EAST + block + "  max_connections: 0\n")


def test_proxy_access_log_format_is_checked(tmp_path: Path) -> None:
    block = "proxy:\n  listen: 127.0.0.1:0\n  backends: [{url: http://127.0.0.1:1}]\n"
    with pytest.raises(ConfigError, match="combined"):
        load(tmp_path, east=EAST + block + "  access_log: {format: apache}\n")


ROUTED = """\
proxy:
  listen: 127.0.0.1:0
  backends: [{name: a1, url: "http://127.0.0.1:1"}, {name: b1, url: "http://127.0.0.1:2"}]
"""


def test_proxy_routes_map_to_proxy_spec(tmp_path: Path) -> None:
    routes = """\
  routes:
    - {host: API.example.com, path: /v2/, backends: [a1, a1]}
    - {host: "*.example.org", backends: [b1]}
"""
    proxy = load(tmp_path, east=EAST + ROUTED + routes).regions["east"].proxy
    assert proxy is not None
    assert proxy.routes == (
        ProxyRoute("API.example.com", "/v2/", ("a1",)),
        ProxyRoute("*.example.org", "/", ("b1",)),
    )
    plain = load(tmp_path, east=EAST + ROUTED).regions["east"].proxy
    assert plain is not None and plain.routes == ()


def test_proxy_route_naming_an_unknown_backend_is_an_error(tmp_path: Path) -> None:
    routes = "  routes:\n    - path: /v2/\n      backends:\n        - a1\n        - nope\n"
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, east=EAST + ROUTED + routes)
    (problem,) = caught.value.problems
    assert "unknown backend 'nope'" in problem.message
    assert problem.line == EAST.count("\n") + ROUTED.count("\n") + 5


@pytest.mark.parametrize("route", ["{path: v2, backends: [a1]}", "{host: a b, backends: [a1]}"])
def test_proxy_route_host_and_path_are_checked(tmp_path: Path, route: str) -> None:
    with pytest.raises(ConfigError):
        load(tmp_path, east=EAST + ROUTED + f"  routes: [{route}]\n")


def test_settings_defaults_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "db.mmdb").write_bytes(b"")
    config = load(
        tmp_path,
        settings="""\
        dns: {listen: "[::1]:5353", tcp_idle_timeout: 30s}
        api: {token_file: secrets/token}
        geoip: {database: db.mmdb}
        workers: 2
        """,
    )
    settings = config.settings
    assert settings.dns_listen == (HostPort("::1", 5353),)
    assert settings.tcp_idle_timeout == 30.0
    assert settings.api_listen == HostPort("127.0.0.1", 8053)
    assert settings.token_env == "GSLB_API_TOKEN"
    assert settings.token_file == str(tmp_path / "secrets" / "token")
    assert settings.geoip_database == str(tmp_path / "db.mmdb")
    assert settings.workers == 2
    assert load(tmp_path / "bare").settings.dns_listen == (HostPort("0.0.0.0", 53),)


def test_several_zones_nested_zones_yml_and_merge_keys(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        **{
            "sub.example.com.yml": """\
            zone: sub.example.com
            ns: [ns1.example.com]
            records:
              a: &rec {A: 192.0.2.5, ttl: 60}
              b: {<<: *rec, ttl: 90}
            """
        },
    )
    assert [z.name for z in config.zones] == ["example.com.", "sub.example.com."]
    sub = config.zones[1]
    records = {(r.name, r.rtype): r for r in sub.records}
    assert records[("a.sub.example.com.", "A")].ttl == 60
    assert records[("b.sub.example.com.", "A")].ttl == 90  # own key beats the merged one
    assert records[("b.sub.example.com.", "A")].rdata == "192.0.2.5"


def test_long_txt_is_split_into_character_strings_and_quoted(tmp_path: Path) -> None:
    assert txt('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'
    long = "é" * 200  # 400 octets: cut on a character boundary
    assert txt(long) == f'"{"é" * 127}" "{"é" * 73}"'
    config = load(
        tmp_path,
        zone=ZONE.replace("ns1: {A: 192.0.2.1}", f"ns1: {{A: 192.0.2.1, TXT: {'x' * 600}}}"),
    )
    (record,) = [r for r in config.zones[0].records if r.rtype == "TXT"]
    assert record.rdata == " ".join(['"' + "x" * 255 + '"'] * 2 + ['"' + "x" * 90 + '"'])


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(str(tmp_path / "nope"))
    assert caught.value.problems[0].message == "no such config directory"


def test_load_region_proxy_names_the_missing_block(tmp_path: Path) -> None:
    write(tmp_path, {"example.com.yaml": ZONE, "regions/east.yaml": EAST})
    with pytest.raises(ConfigError, match="has no proxy"):
        load_region_proxy(str(tmp_path), "east")
    with pytest.raises(ConfigError, match="no region 'west'"):
        load_region_proxy(str(tmp_path), "west")


@pytest.mark.parametrize(
    ("written", "message"),
    [("150%", "percentage out of range"), ("half", "bad percentage")],
)
def test_panic_threshold_must_be_a_percentage(tmp_path: Path, written: str, message: str) -> None:
    block = f"proxy:\n  listen: 127.0.0.1:0\n  panic_threshold: {written}\n"
    block += "  backends:\n    - url: http://127.0.0.1:18000\n"
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, east=EAST + block)
    assert any(message in p.message for p in caught.value.problems), caught.value.problems
