"""Configuration of the three servers the DNS benchmark compares, on the same zone and data.

The zone is the sample `zones/` of this repository: static records (SOA, NS, MX, TXT, A,
AAAA, CNAME) plus `www.gslb.example.com` steered by geography over three regions and `api`
(failover, one address). Each server gets the equivalent configuration:

* gslb: the sample directory itself, with the GeoIP database and listen address replaced.
* PowerDNS (geoip backend): `www` is a service that tries `%cc.www` (country), then
  `%cn.www` (continent), then `default.www`; those names hold the region's records, with
  weights as in the region files (the backend then answers one address drawn by weight).
* gdnsd (plugin_geoip): a map with the same continent and country mapping and the regions'
  coordinates for everything else (City auto mode), `www` a DYNA resource over it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
ZONE = "gslb.example.com"


@dataclass(frozen=True)
class Region:
    """A sample region, as the other servers need it spelled out."""

    coords: tuple[float, float]
    v4: tuple[tuple[str, int], ...]  # (address, weight)
    v6: tuple[str, ...]
    continents: tuple[str, ...]
    countries: tuple[str, ...] = ()


REGIONS = {
    "us-east": Region(
        (39.04, -77.49), (("192.0.2.10", 3), ("192.0.2.11", 1)), ("2001:db8:a::10",), ("NA", "SA")
    ),
    "eu-west": Region(
        (53.35, -6.26),
        (("198.51.100.10", 3), ("198.51.100.11", 1)),
        ("2001:db8:e::10",),
        ("EU", "AF"),
        ("TR",),
    ),
    "ap-southeast": Region(
        (1.35, 103.82),
        (("203.0.113.10", 1), ("203.0.113.11", 1)),
        ("2001:db8:5::10",),
        ("AS", "OC"),
    ),
}
ORDER = ["us-east", "eu-west", "ap-southeast"]
STATIC_ZONEFILE = f"""$TTL 300
@ SOA ns1.{ZONE}. hostmaster.example.com. 2026112601 3600 600 604800 60
@ NS ns1.{ZONE}.
@ NS ns2.{ZONE}.
@ MX 10 mail.example.com.
@ TXT "v=spf1 -all"
ns1 A 192.0.2.53
ns1 AAAA 2001:db8::53
ns2 A 198.51.100.53
docs CNAME www.{ZONE}.
sip A 203.0.113.60
_sip._tcp SRV 10 60 5060 sip.{ZONE}.
api 30 A 192.0.2.20
"""


@dataclass(frozen=True)
class Server:
    name: str
    command: list[str]
    port: int
    workdir: Path
    cwd: Path = ROOT  # `python -m gslb` imports the checkout it runs in


def gslb(
    workdir: Path,
    db: str,
    port: int,
    python: str,
    uvloop: bool,
    cache_entries: int = 0,
    cwd: Path = ROOT,
) -> Server:
    config = workdir / "zones"
    shutil.copytree(ROOT / "zones", config, dirs_exist_ok=True)
    settings = (config / "gslb.yaml").read_text()
    settings = settings.replace("../geodata/demo-city.mmdb", db)
    settings = settings.replace("../state.json", str(workdir / "state.json"))
    if cache_entries:
        settings = settings.replace(
            "  max_udp_size: 1232\n", f"  max_udp_size: 1232\n  cache_entries: {cache_entries}\n"
        )
    (config / "gslb.yaml").write_text(settings)
    # `gslb serve` runs under uvloop (gslb.dns.loop); GSLB_EVENT_LOOP=asyncio compares.
    command = [] if uvloop else ["env", "GSLB_EVENT_LOOP=asyncio"]
    command += [python, "-m", "gslb", "serve", "--config", str(config)]
    command += ["--dns", f"127.0.0.1:{port}", "--api", "127.0.0.1:0"]
    return Server("gslb" if cwd == ROOT else "gslb-before", command, port, workdir, cwd)


def with_env(server: Server, name: str, **env: str) -> Server:
    """`server` run under another name with these environment variables set."""
    settings = [f"{key}={value}" for key, value in env.items()]
    return replace(server, name=name, command=["env", *settings, *server.command])


def pdns(workdir: Path, db: str, port: int) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    records: list[str] = [
        f"    {ZONE}:",
        f"      - soa: ns1.{ZONE} hostmaster.example.com 2026112601 3600 600 604800 60",
        f"      - ns: ns1.{ZONE}",
        f"      - ns: ns2.{ZONE}",
        "      - mx: 10 mail.example.com",
        '      - txt: "v=spf1 -all"',
        f"    ns1.{ZONE}:",
        "      - a: 192.0.2.53",
        "      - aaaa: 2001:db8::53",
        f"    ns2.{ZONE}:",
        "      - a: 198.51.100.53",
        f"    docs.{ZONE}:",
        f"      - cname: www.{ZONE}",
        f"    sip.{ZONE}:",
        "      - a: 203.0.113.60",
        f"    _sip._tcp.{ZONE}:",
        f"      - srv: 10 60 5060 sip.{ZONE}",
        f"    api.{ZONE}:",
        "      - a: {content: 192.0.2.20, ttl: 30}",
    ]
    labels: dict[str, str] = {"default": "us-east"}
    for region, spec in REGIONS.items():
        for code in spec.continents + spec.countries:
            labels[code.lower()] = region
    for label, region in labels.items():
        spec = REGIONS[region]
        records.append(f"    {label}.www.{ZONE}:")
        for address, weight in spec.v4:
            records.append(f"      - a: {{content: {address}, weight: {weight}, ttl: 30}}")
        for address in spec.v6:
            records.append(f"      - aaaa: {{content: '{address}', ttl: 30}}")
    zones = "\n".join(
        [
            "domains:",
            f"- domain: {ZONE}",
            "  ttl: 300",
            "  records:",
            *records,
            "  services:",
            f"    www.{ZONE}: ['%cc.www.{ZONE}', '%cn.www.{ZONE}', 'default.www.{ZONE}']",
            "",
        ]
    )
    (workdir / "geo-zones.yaml").write_text(zones)
    (workdir / "pdns.conf").write_text(
        "\n".join(
            [
                "launch=geoip",
                f"geoip-database-files=mmdb:{db}",
                f"geoip-zones-file={workdir / 'geo-zones.yaml'}",
                "edns-subnet-processing=yes",
                "local-address=127.0.0.1",
                f"local-port={port}",
                f"socket-dir={workdir}",
                "guardian=no",
                "daemon=no",
                "disable-syslog=yes",
                "loglevel=3",
                "receiver-threads=1",
                "distributor-threads=1",
                "",
            ]
        )
    )
    command = ["pdns_server", f"--config-dir={workdir}"]
    return Server("PowerDNS", command, port, workdir)


def gdnsd(workdir: Path, db: str, port: int) -> Server:
    (workdir / "zones").mkdir(parents=True, exist_ok=True)
    (workdir / "run").mkdir(exist_ok=True)
    (workdir / "state").mkdir(exist_ok=True)
    order = {region: [region] + [r for r in ORDER if r != region] for region in ORDER}
    mapping: dict[str, list[str]] = {}
    for region, spec in REGIONS.items():
        for continent in spec.continents:
            mapping[continent] = order[region]
    # MaxMind places Turkey in Asia: the country entry sits under AS.
    lines = [f"{c} => [{', '.join(dcs)}]" for c, dcs in mapping.items() if c != "AS"]
    lines.append(f"AS => {{ TR => [{', '.join(order['eu-west'])}] }}")
    coords = ", ".join(f"{r} => [{REGIONS[r].coords[0]}, {REGIONS[r].coords[1]}]" for r in ORDER)
    dcmap = []
    for region in ORDER:
        spec = REGIONS[region]
        v4 = ", ".join(a for a, _ in spec.v4)
        dcmap.append(f"{region} => {{ addrs_v4 => [{v4}], addrs_v6 => [{', '.join(spec.v6)}] }}")
    config = f"""
options => {{
  listen => [ 127.0.0.1:{port} ]
  edns_client_subnet => true
  udp_threads => 1
  tcp_threads => 1
}}
plugins => {{
  geoip => {{
    maps => {{
      regions => {{
        geoip2_db => {db}
        datacenters => [{", ".join(ORDER)}]
        auto_dc_coords => {{ {coords} }}
        map => {{ {" ".join(lines)} }}
      }}
    }}
    resources => {{
      www => {{
        map => regions
        dcmap => {{ {" ".join(dcmap)} }}
      }}
    }}
  }}
}}
"""
    (workdir / "config").write_text(config)
    zone = STATIC_ZONEFILE + "www 30 DYNA geoip!www\n"
    (workdir / "zones" / ZONE).write_text(zone)
    command = ["gdnsd", "-c", str(workdir), "start"]
    return Server("gdnsd", command, port, workdir)
