"""gslb.config: every bad input becomes `file:line: message`, all of them at once."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gslb.config import load_config
from gslb.config.problems import Report
from gslb.config.yamlmarks import MarkedLoader, PureMarkedLoader, parse_yaml
from gslb.errors import ConfigError, Problem

SAMPLE = Path(__file__).resolve().parent.parent / "zones"

ZONE = """\
zone: example.com
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
# The same zone with `records:` last, so that lines appended to it are records.
ZONE_RECORDS_LAST = """\
zone: example.com
ns: [ns1.example.com]
services:
  www: {regions: [east]}
records:
  ns1: {A: 192.0.2.1}
"""
BASE = {"example.com.yaml": ZONE, "regions/east.yaml": EAST}


def problems_for(directory: Path, files: dict[str, str]) -> tuple[Problem, ...]:
    for name, text in {**BASE, **files}.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as caught:
        load_config(str(directory))
    return caught.value.problems


# (case id, files written over BASE, the file and line of the problem, part of its message)
CASES: list[tuple[str, dict[str, str], str, int, str]] = [
    (
        "unknown key with a suggestion",
        {"example.com.yaml": ZONE + "tll: 60\n"},
        "example.com.yaml",
        7,
        "unknown key 'tll' in zone file (did you mean 'ttl'?); allowed: dnssec, ns, records,",
    ),
    (
        "unknown record type",
        {"example.com.yaml": ZONE.replace("{A: 192", "{AAA: 192")},
        "example.com.yaml",
        4,
        "unknown key 'AAA' in records entry (did you mean 'AAAA'?)",
    ),
    (
        "duplicate key",
        {"example.com.yaml": "ttl: 60\n" + ZONE + "ttl: 70\n"},
        "example.com.yaml",
        8,
        "duplicate key 'ttl' (first at line 1)",
    ),
    (
        "duplicate key in a flow mapping",
        {"example.com.yaml": ZONE.replace("{A: 192.0.2.1}", "{A: 192.0.2.1, A: 192.0.2.2}")},
        "example.com.yaml",
        4,
        "duplicate key 'A'",
    ),
    (
        "YAML syntax error",
        {"example.com.yaml": ZONE.replace("{A: 192.0.2.1}", "{A: [192.0.2.1}")},
        "example.com.yaml",
        4,
        "YAML syntax error",
    ),
    (
        "YAML bad indentation",
        {"regions/east.yaml": "region: east\n  weight: 2\n"},
        "regions/east.yaml",
        2,
        "YAML syntax error",
    ),
    (
        "top level is a list",
        {"regions/east.yaml": "- region: east\n"},
        "regions/east.yaml",
        1,
        "expected a mapping at the top level, got a list",
    ),
    (
        "empty zone file",
        {"other.yaml": "# nothing\n"},
        "other.yaml",
        1,
        "empty file",
    ),
    (
        "missing zone key",
        {"other.yaml": "ttl: 60\nns: [a.example.net]\n"},
        "other.yaml",
        1,
        "missing required key 'zone'",
    ),
    (
        "no name servers",
        {"example.com.yaml": ZONE.replace("ns: [ns1.example.com]", "ns: []")},
        "example.com.yaml",
        2,
        "needs at least 1 item",
    ),
    (
        "wrong type",
        {"example.com.yaml": ZONE + "ttl: [1]\n"},
        "example.com.yaml",
        7,
        "expected an integer 0..2147483647, got a list",
    ),
    (
        "null value",
        {"example.com.yaml": ZONE + "ttl:\n"},
        "example.com.yaml",
        7,
        "expected an integer 0..2147483647, got nothing (null)",
    ),
    (
        "TTL out of range",
        {"example.com.yaml": ZONE + "ttl: 2147483648\n"},
        "example.com.yaml",
        7,
        "TTL out of range",
    ),
    (
        "negative owner TTL",
        {"example.com.yaml": ZONE.replace("{A: 192.0.2.1}", "{A: 192.0.2.1, ttl: -1}")},
        "example.com.yaml",
        4,
        "TTL out of range",
    ),
    (
        "bad address in an A record",
        {"example.com.yaml": ZONE.replace("192.0.2.1}", "192.0.2.300}")},
        "example.com.yaml",
        4,
        "bad address '192.0.2.300'",
    ),
    (
        "IPv6 address in an A record",
        {"example.com.yaml": ZONE.replace("{A: 192.0.2.1}", '{A: ["2001:db8::1"]}')},
        "example.com.yaml",
        4,
        "A record needs an IPv4 address",
    ),
    (
        "IPv4 address in an AAAA record, on its own list line",
        {
            "example.com.yaml": ZONE_RECORDS_LAST
            + "  v6:\n    AAAA:\n      - 2001:db8::1\n      - 192.0.2.9\n"
        },
        "example.com.yaml",
        10,
        "AAAA record needs an IPv6 address",
    ),
    (
        "bad MX",
        {"example.com.yaml": ZONE.replace("{A: 192.0.2.1}", "{MX: mail.example.com}")},
        "example.com.yaml",
        4,
        "MX needs 'preference exchange'",
    ),
    (
        "bad name in rdata",
        {"example.com.yaml": ZONE.replace("{A: 192.0.2.1}", "{CNAME: bad..name}")},
        "example.com.yaml",
        4,
        "empty label",
    ),
    (
        "label longer than 63",
        {"example.com.yaml": ZONE.replace("ns1: {A:", "n" + "x" * 63 + ": {A:")},
        "example.com.yaml",
        4,
        "longer than 63 octets",
    ),
    (
        "CNAME beside other data",
        {"example.com.yaml": ZONE.replace("{A: 192.0.2.1}", "{A: 192.0.2.1, CNAME: x.net.}")},
        "example.com.yaml",
        4,
        "CNAME beside other data",
    ),
    (
        "CNAME at the apex",
        {"example.com.yaml": ZONE.replace("ns1: {A: 192.0.2.1}", '"@": {CNAME: x.net.}')},
        "example.com.yaml",
        4,
        "CNAME at the zone apex",
    ),
    (
        "two CNAMEs",
        {
            "example.com.yaml": ZONE_RECORDS_LAST
            + "  alias:\n    CNAME:\n      - a.net.\n      - b.net.\n"
        },
        "example.com.yaml",
        10,
        "more than one CNAME",
    ),
    (
        "owner outside the zone",
        {"example.com.yaml": ZONE_RECORDS_LAST + "  www.example.org.: {A: 192.0.2.7}\n"},
        "example.com.yaml",
        7,
        "outside the zone example.com.",
    ),
    (
        "service name also static",
        {"example.com.yaml": ZONE + "  ns1: {}\n"},
        "example.com.yaml",
        7,
        "service name ns1.example.com. is also a static record owner (line 4)",
    ),
    (
        "undefined region",
        {"example.com.yaml": ZONE.replace("[east]", "[east, eats-west]")},
        "example.com.yaml",
        6,
        "undefined region 'eats-west'",
    ),
    (
        "undefined region on its own line",
        {"example.com.yaml": ZONE.replace("{regions: [east]}", "\n    regions:\n      - west\n")},
        "example.com.yaml",
        8,
        "undefined region 'west' (did you mean 'east'?); defined: east",
    ),
    (
        "bad policy",
        {"example.com.yaml": ZONE.replace("{regions", "{policy: gep, regions")},
        "example.com.yaml",
        6,
        "'gep' is not one of: geo, weighted, failover (did you mean 'geo'?)",
    ),
    (
        "service without endpoints",
        {"example.com.yaml": ZONE + "  api: {}\n"},
        "example.com.yaml",
        7,
        "service api.example.com. has no endpoints in any of its regions (east)",
    ),
    (
        "duplicate zone",
        {"example.com-again.yaml": "zone: EXAMPLE.com.\nns: [ns1.example.com]\n"},
        "example.com.yaml",
        1,
        "zone example.com. is already defined in",
    ),
    (
        "region service that no zone defines",
        {"regions/east.yaml": EAST + "  ww.example.com: [192.0.2.11]\n"},
        "regions/east.yaml",
        4,
        "no zone defines a service ww.example.com. (did you mean 'www.example.com.'?)",
    ),
    (
        "duplicate endpoint address",
        {"regions/east.yaml": EAST.replace("[192.0.2.10]", "[192.0.2.10, {address: 192.0.2.10}]")},
        "regions/east.yaml",
        3,
        "duplicate address 192.0.2.10",
    ),
    (
        "bad endpoint address",
        {
            "regions/east.yaml": EAST.replace(
                "[192.0.2.10]", "\n    - {address: 192.0.2, weight: 2}"
            )
        },
        "regions/east.yaml",
        4,
        "bad address '192.0.2'",
    ),
    (
        "duplicate region",
        {"regions/west.yaml": "region: east\n"},
        "regions/west.yaml",
        1,
        "region 'east' is already defined in",
    ),
    (
        "bad region name",
        {"regions/east.yaml": EAST.replace("region: east", "region: East_1")},
        "regions/east.yaml",
        1,
        "is not a region name",
    ),
    (
        "latitude out of range",
        {"regions/east.yaml": EAST + "location: {lat: 91, lon: 0}\n"},
        "regions/east.yaml",
        4,
        "latitude out of range",
    ),
    (
        "missing longitude",
        {"regions/east.yaml": EAST + "location:\n  lat: 10\n"},
        "regions/east.yaml",
        5,
        "missing required key 'lon' in location",
    ),
    (
        "bad continent",
        {"regions/east.yaml": EAST + "serves: {continents: [EU, EA]}\n"},
        "regions/east.yaml",
        4,
        "'EA' is not one of: AF, AN, AS, EU, NA, OC, SA",
    ),
    (
        "bad country",
        {"regions/east.yaml": EAST + "serves: {countries: [USA]}\n"},
        "regions/east.yaml",
        4,
        "'USA' is not a two-letter country code",
    ),
    (
        "bad duration",
        {"regions/east.yaml": EAST + "health:\n  interval: 10 parsecs\n"},
        "regions/east.yaml",
        5,
        "bad duration '10 parsecs'",
    ),
    (
        "zero interval",
        {"regions/east.yaml": EAST + "health: {interval: 0s}\n"},
        "regions/east.yaml",
        4,
        "duration out of range",
    ),
    (
        "timeout longer than interval",
        {"regions/east.yaml": EAST + "health:\n  interval: 1s\n  timeout: 5s\n"},
        "regions/east.yaml",
        6,
        "timeout 5s is longer than the interval 1s",
    ),
    (
        "rise out of range",
        {"regions/east.yaml": EAST + "health: {rise: 0}\n"},
        "regions/east.yaml",
        4,
        "rise out of range: 0 (allowed 1..100)",
    ),
    (
        "bad proxy url",
        {
            "regions/east.yaml": EAST
            + "proxy:\n  listen: 127.0.0.1:8080\n  backends:\n"
            + "    - {name: a, url: 'ftp://127.0.0.1:8443'}\n"
        },
        "regions/east.yaml",
        7,
        "only http:// and https:// URLs are supported",
    ),
    (
        "proxy without backends",
        {"regions/east.yaml": EAST + "proxy:\n  listen: 127.0.0.1:8080\n  backends: []\n"},
        "regions/east.yaml",
        6,
        "needs at least 1 item",
    ),
    (
        "duplicate backend name",
        {
            "regions/east.yaml": EAST
            + "proxy:\n  listen: 127.0.0.1:8080\n  backends:\n"
            + "    - {name: a, url: 'http://127.0.0.1:1'}\n"
            + "    - {name: a, url: 'http://127.0.0.1:2'}\n"
        },
        "regions/east.yaml",
        8,
        "duplicate backend name 'a'",
    ),
    (
        "bad proxy method",
        {
            "regions/east.yaml": EAST
            + "proxy:\n  listen: 127.0.0.1:8080\n  method: leastconn\n"
            + "  backends: [{url: 'http://127.0.0.1:1'}]\n"
        },
        "regions/east.yaml",
        6,
        "(did you mean 'least_conn'?)",
    ),
    (
        "bad listen address",
        {"gslb.yaml": "dns:\n  listen: ['127.0.0.1:53', '::1:53']\n"},
        "gslb.yaml",
        2,
        "write IPv6 as [address]:port",
    ),
    (
        "udp size out of range",
        {"gslb.yaml": "dns: {max_udp_size: 100}\n"},
        "gslb.yaml",
        1,
        "out of range: 100 (allowed 512..4096)",
    ),
    (
        "cache too small",
        {"gslb.yaml": "dns:\n  listen: '127.0.0.1:53'\n  cache_entries: 10\n"},
        "gslb.yaml",
        3,
        "out of range: 10 (allowed 1000..10000000)",
    ),
    (
        "geoip database missing",
        {"gslb.yaml": "api: {listen: '127.0.0.1:0'}\ngeoip:\n  database: missing.mmdb\n"},
        "gslb.yaml",
        3,
        "no such file: missing.mmdb",
    ),
    (
        "unknown settings section",
        {"gslb.yaml": "dns: {}\napi_: {}\n"},
        "gslb.yaml",
        2,
        "unknown key 'api_' in gslb.yaml (did you mean 'api'?)",
    ),
    (
        "unknown YAML tag",
        {"gslb.yaml": "workers: !!python/object:os.system 1\n"},
        "gslb.yaml",
        1,
        "YAML syntax error",
    ),
    (
        "recursive alias",
        {"gslb.yaml": "dns: &a {listen: *a}\n"},
        "gslb.yaml",
        1,
        "recursive alias",
    ),
]


@pytest.mark.parametrize(
    ("files", "file", "line", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_reported_at_its_file_and_line(
    tmp_path: Path, files: dict[str, str], file: str, line: int, fragment: str
) -> None:
    problems = problems_for(tmp_path, files)
    where = str(tmp_path / file)
    matching = [p for p in problems if p.file == where and p.line == line and fragment in p.message]
    assert matching, "\n".join(str(p) for p in problems)


def test_several_problems_in_several_files_are_reported_together(tmp_path: Path) -> None:
    problems = problems_for(
        tmp_path,
        {
            "gslb.yaml": "workers: 0\n",
            "example.com.yaml": ZONE + "ttl: -5\n",
            "regions/east.yaml": EAST + "weight: 0\nhealth: {type: udp}\n",
        },
    )
    found = {(Path(p.file).relative_to(tmp_path).as_posix(), p.line) for p in problems}
    assert found == {
        ("gslb.yaml", 1),
        ("example.com.yaml", 7),
        ("regions/east.yaml", 4),
        ("regions/east.yaml", 5),
    }
    assert (
        str(problems[0]) == f"{tmp_path}/example.com.yaml:7: TTL out of range: -5 "
        "(allowed 0..2147483647)"
    )


def test_cross_file_problems_come_in_the_same_round_as_the_others(tmp_path: Path) -> None:
    # Before, a problem inside any region file held back "undefined region" in the zones,
    # and one inside any zone file "no zone defines a service": three rounds of `gslb check`.
    problems = problems_for(
        tmp_path,
        {
            "example.com.yaml": ZONE.replace("[east]", "[eats]") + "ttl: soon\n",
            "regions/east.yaml": EAST
            + "weight: lots\nhealth: {type: http, interval: 2s, timeout: 5s}\n",
        },
    )
    messages = {(Path(p.file).name, p.message.split(" (")[0].split(":")[0]) for p in problems}
    assert ("example.com.yaml", "undefined region 'eats'") in messages, problems
    assert any(f == "example.com.yaml" and "integer" in m for f, m in messages), problems
    assert any(f == "east.yaml" and "integer" in m for f, m in messages), problems
    assert ("east.yaml", "timeout 5s is longer than the interval 2s") in messages, problems


def test_an_unknown_service_is_reported_beside_a_zone_files_own_problem(tmp_path: Path) -> None:
    region = EAST.replace("services:\n", "services:\n  nope.example.com: [192.0.2.99]\n")
    problems = problems_for(
        tmp_path, {"example.com.yaml": ZONE + "ttl: soon\n", "regions/east.yaml": region}
    )
    texts = [str(p) for p in problems]
    assert any("example.com.yaml:7:" in t for t in texts), texts
    assert any(
        "regions/east.yaml:3: no zone defines a service nope.example.com." in t for t in texts
    )


def test_file_names_keep_the_directory_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(SAMPLE, tmp_path / "zones")
    (tmp_path / "geodata").mkdir()
    (tmp_path / "geodata" / "demo-city.mmdb").write_bytes(b"")
    bad = tmp_path / "zones" / "regions" / "eu-west.yaml"
    bad.write_text(bad.read_text().replace("{lat: 53.35,", "{lat: 153.35,"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config("zones")
    assert [str(p) for p in caught.value.problems] == [
        "zones/regions/eu-west.yaml:2: latitude out of range: 153.35 (allowed -90.0..90.0)"
    ]
    assert str(caught.value) == str(caught.value.problems[0])


def test_unreadable_bytes_are_a_problem_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "regions").mkdir()
    (tmp_path / "regions" / "broken.yaml").write_bytes(b"region: \xff\xfe\n")
    problems = problems_for(tmp_path, {})
    assert problems == (Problem(str(tmp_path / "regions" / "broken.yaml"), 0, "not UTF-8 text"),)


yaml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 70000)
    | st.floats(allow_nan=True)
    | st.sampled_from(
        [
            "@",
            "www",
            "192.0.2.1",
            "2001:db8::1",
            "10s",
            "http://127.0.0.1:1",
            "east",
            "EU",
            "x" * 70,
            "example.com.",
            "a..b",
            "",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "zone",
                    "ns",
                    "records",
                    "services",
                    "ttl",
                    "A",
                    "CNAME",
                    "TXT",
                    "region",
                    "health",
                    "proxy",
                    "backends",
                    "url",
                    "regions",
                    "www",
                    "interval",
                    "address",
                    "weight",
                    "soa",
                    "mname",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(zone=yaml_values, region=yaml_values)
def test_arbitrary_documents_give_config_errors_not_tracebacks(
    tmp_path: Path, zone: object, region: object
) -> None:
    directory = tmp_path / "fuzz"
    (directory / "regions").mkdir(parents=True, exist_ok=True)
    (directory / "z.yaml").write_text(yaml.safe_dump(zone))
    (directory / "regions" / "r.yaml").write_text(yaml.safe_dump(region))
    try:
        load_config(str(directory))
    except ConfigError as exc:
        assert exc.problems
        assert all(isinstance(p.line, int) and p.line >= 0 for p in exc.problems)
    assert os.path.isdir(directory)


@pytest.mark.parametrize(
    "text",
    [
        ZONE,
        "a: 1\nb: {c: [1, 2], c: 3}\n",
        "a: [1, 2\nb: 3\n",
        "x: &x {k: 1}\ny: {<<: *x, k: 2}\n",
        "- 1\n- NO\n- '08'\n- 0x1f\n",
        "a: 1\n---\nb: 2\n",
    ],
)
def test_libyaml_and_pure_python_loaders_agree(text: str) -> None:
    fast, pure = Report("f"), Report("f")
    assert parse_yaml(text, fast, MarkedLoader) == parse_yaml(text, pure, PureMarkedLoader)
    # The syntax-error wording is each parser's own; where it points is the same.
    assert [(p.line, p.message[:18]) for p in fast.problems] == [
        (p.line, p.message[:18]) for p in pure.problems
    ]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("abz019:-[]{}&*!|>'\"#@,. \n\t?%<")) | st.characters(),
        max_size=60,
    )
)
def test_arbitrary_text_gives_config_errors_not_tracebacks(tmp_path: Path, text: str) -> None:
    directory = tmp_path / "text"
    directory.mkdir(exist_ok=True)
    (directory / "z.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
    with pytest.raises(ConfigError) as caught:
        load_config(str(directory))
    assert all(p.file == str(directory / "z.yaml") for p in caught.value.problems)
