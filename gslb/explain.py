"""`gslb explain` and `GET /v1/explain`: the decision for one query, step by step.

Runs the very `select()` the DNS server runs (gdnsd_geoip_test's lesson): what
explain shows is what a resolver gets.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from dnslib import QTYPE

from gslb.dns.codec import rcode_name
from gslb.geo import NoGeo, open_geo
from gslb.netrules import NetworkRules
from gslb.plan import compile_plan
from gslb.select import Client, select
from gslb.select.client import GeoLookup, locate
from gslb.state import State, View


def parse_qtype(text: str) -> int:
    text = text.strip().upper()
    if text.startswith("TYPE") and text[4:].isdigit():
        return int(text[4:])
    if text.isdigit():
        return int(text)
    value = getattr(QTYPE, text, None)
    if not isinstance(value, int):
        raise ValueError(f"unknown query type {text!r}")
    return value


def client_from_text(text: str, geo: GeoLookup | None, rules: NetworkRules | None = None) -> Client:
    """`1.2.3.4` is a resolver's address; `1.2.3.0/24` an ECS subnet with that source prefix.

    `1.2.3.4/0` is a resolver at 1.2.3.4 sending ECS with source prefix 0: as the server
    does, the resolver's address then locates the client.
    """
    if "/" in text:
        network = ipaddress.ip_network(text, strict=False)
        source: int | None = network.prefixlen
        address = network.network_address if source else ipaddress.ip_address(text.split("/")[0])
    else:
        address = ipaddress.ip_address(text)
        source = None
    return locate(address, source, geo, rules)


def _rrsets(rrsets: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": r.name,
            "type": QTYPE.get(r.rtype, str(r.rtype)),
            "ttl": r.ttl,
            "data": [str(rd) for rd in r.rdatas],
        }
        for r in rrsets
    ]


def explain(
    view: View,
    geo: GeoLookup | None,
    name: str,
    client_text: str,
    qtype_text: str,
    rng: random.Random,
) -> dict[str, Any]:
    qtype = parse_qtype(qtype_text)
    qname = name.strip().lower()
    if not qname.endswith("."):
        qname += "."
    client = client_from_text(client_text, geo, view.plan.networks)
    decision = select(view.plan, view.state, qname, qtype, client, rng, explain=True)
    loc = client.location
    return {
        "query": {"name": qname, "type": QTYPE.get(qtype, str(qtype))},
        "client": {
            "address": str(client.address),
            "ecs_source_prefix": client.source_prefix,
            "location": None
            if loc is None
            else {
                "country": loc.country,
                "subdivision": loc.subdivision,
                "continent": loc.continent,
                "lat": loc.lat,
                "lon": loc.lon,
                "network": loc.network,
            },
            "geoip": "no database" if geo is None else "database",
        },
        "steps": [{"step": s.step, "detail": s.detail} for s in decision.trace],
        "rcode": rcode_name(decision.rcode),
        "authoritative": decision.authoritative,
        "answer": _rrsets(decision.answer),
        "authority": _rrsets(decision.authority),
        "additional": _rrsets(decision.additional),
        "ecs_scope": decision.scope if client.source_prefix is not None else None,
        "region": decision.steering.region if decision.steering else None,
        "fail_open": decision.steering.fail_open if decision.steering else False,
    }


def explain_offline(
    config_dir: str, name: str, client_text: str, qtype_text: str, rng: random.Random
) -> dict[str, Any]:
    """Explain against a config directory: operator overrides from the saved admin state,
    every endpoint taken as healthy (offline, nothing is probed)."""
    from gslb.config import load_config
    from gslb.persist import StateFile

    config = load_config(config_dir)
    admin = StateFile(config.settings.state_path).load().admin
    geo = open_geo(config.settings.geoip_database)
    try:
        view = View(compile_plan(config), State(admin=admin))
        return explain(
            view, None if isinstance(geo, NoGeo) else geo, name, client_text, qtype_text, rng
        )
    finally:
        geo.close()


def explain_online(api: str, name: str, client_text: str, qtype_text: str) -> dict[str, Any]:
    """`GET /v1/explain` of a running node: its live health and, in a cluster, the
    verdicts it is outvoted on. ValueError with the node's error, or why it cannot be reached."""
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    query = urllib.parse.urlencode({"name": name, "client": client_text, "type": qtype_text})
    url = f"{api.rstrip('/')}/v1/explain?{query}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        raise ValueError(f"{url}: {exc.code} {message}") from exc
    except (OSError, ValueError) as exc:
        raise ValueError(f"{url}: {exc}") from exc
    return result


LABEL = 11  # the width of the first column of `format_text`


def _subdivision(loc: dict[str, Any]) -> str:
    return f" ({loc['subdivision']})" if loc.get("subdivision") else ""


def format_text(result: dict[str, Any]) -> str:
    """The human form: one labelled line per fact and per step, in decision order."""
    q = result["query"]
    c = result["client"]
    loc = c["location"]
    where = (
        "unknown location"
        if loc is None
        else (
            f"{loc['country']}{_subdivision(loc)}/{loc['continent']} at {loc['lat']},{loc['lon']} "
            f"(network {loc['network']})"
        )
    )
    ecs = f" (ECS /{c['ecs_source_prefix']})" if c["ecs_source_prefix"] is not None else ""
    rows = [
        ("query", f"{q['name']} {q['type']}"),
        ("client", f"{c['address']}{ecs}: {where} [{c['geoip']}]"),
    ]
    rows += [(step["step"], step["detail"]) for step in result["steps"]]
    rows.append(
        ("rcode", result["rcode"] + (" (authoritative)" if result["authoritative"] else ""))
    )
    for section in ("answer", "authority", "additional"):
        for rrset in result[section]:
            for data in rrset["data"]:
                rows.append((section, f"{rrset['name']} {rrset['ttl']} {rrset['type']} {data}"))
    if result["ecs_scope"] is not None:
        rows.append(("ecs", f"scope /{result['ecs_scope']}"))
    cluster = result.get("cluster")
    if cluster is not None:
        rows.append(
            (
                "cluster",
                f"health as {cluster['live_nodes']} live node(s) decided "
                f"(health_quorum: {cluster['health_quorum']})",
            )
        )
        rows += [("cluster", f"{d['endpoint']}: {d['text']}") for d in cluster["disagreements"]]
    return "\n".join(f"{label:<{LABEL - 1}} {text}" for label, text in rows)
