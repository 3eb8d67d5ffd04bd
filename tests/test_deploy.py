"""Deployment files: they parse, every path they name exists, the compose topology is
consistent with its config, and the alert rules and dashboard name metrics that a
real `gslb serve` and a real `gslb proxy` export (scraped here)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gslb import healthcheck
from gslb.config import load_config
from tests.conftest import copy_sample, start_serve
from tests.dockerfile_layout import read_image

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
RULES = DEPLOY / "prometheus" / "rules" / "gslb-alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "gslb.json"
METRIC = re.compile(r"\bgslb_[a-z0-9_]+\b")


def in_repo(container_path: str) -> Path:
    """A path in the image (/app/...) or relative to the repo, as a repo path."""
    return ROOT / container_path.removeprefix("/app/").removeprefix("./")


def exported_names(exposition: str) -> set[str]:
    """Series names a scrape yields: counters get _total, histograms _bucket/_sum/_count."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        if family.type == "counter":
            names.add(family.name if family.name.endswith("_total") else family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
        else:
            names.add(family.name)
    return names


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    directory = copy_sample(tmp_path_factory.mktemp("zones"))
    zone = directory / "gslb.example.com.yaml"  # signed, so the DNSSEC series exist too
    zone.write_text(zone.read_text() + "dnssec: {algorithm: ECDSAP256SHA256}\n")
    served = start_serve(directory)
    proxy = subprocess.Popen(
        [
            *(sys.executable, "-m", "gslb", "proxy", "--config", str(directory)),
            *("--region", "eu-west", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proxy.stderr is not None
        admin_port = None
        for line in proxy.stderr:
            found = re.search(r"admin on port (\d+)", line)
            if found:
                admin_port = int(found.group(1))
                break
        assert admin_port, "gslb proxy did not report its admin port"
        names = exported_names(fetch(f"http://127.0.0.1:{served.api_port}/metrics"))
        names |= exported_names(fetch(f"http://127.0.0.1:{admin_port}/metrics"))
        yield names
    finally:
        proxy.terminate()
        proxy.wait(timeout=15)
        served.stop()


def rule_list() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def dashboard_variables() -> dict[str, dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


LABEL_VALUES = re.compile(r"^label_values\((.+), *([a-z_]+)\)$")
FILTERED_BY = {"instance": "instance", "zone": "zone", "service": "service", "region": "region"}


def test_scrape_sees_both_tiers(exported: set[str]) -> None:
    assert {"gslb_region_up", "gslb_dns_answers_total", "gslb_proxy_requests_total"} <= exported
    assert "gslb_dns_query_duration_seconds_bucket" in exported


def test_dashboard_picks_its_datasource_with_a_variable() -> None:
    """Importable into any Grafana: no datasource uid of one installation, a variable."""
    variables = dashboard_variables()
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    wanted = {"type": "prometheus", "uid": "${datasource}"}
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"] == wanted, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == wanted, (panel["title"], target["refId"])
    for name, variable in variables.items():
        if variable["type"] == "query":
            assert variable["datasource"] == wanted, name

    def uids(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("datasource"), dict):
                yield node["datasource"].get("uid", "")
            for value in node.values():
                yield from uids(value)
        elif isinstance(node, list):
            for value in node:
                yield from uids(value)

    assert set(uids(dashboard)) == {"${datasource}"}


def test_dashboard_variables_filter_the_queries() -> None:
    """instance, zone, service and region: label values of gslb metrics, several or All
    (All is `.*`, which also matches a series without the label), each used by queries;
    every query is filtered by instance, so the panels show one node or the sum of several."""
    variables = dashboard_variables()
    exprs = dashboard_exprs()
    for name, label in FILTERED_BY.items():
        variable = variables[name]
        assert variable["type"] == "query", name
        assert variable["multi"] is True and variable["includeAll"] is True, name
        assert variable["allValue"] == ".*", name
        found = LABEL_VALUES.match(variable_query(variable))
        assert found and found.group(2) == label, (name, variable_query(variable))
        assert METRIC.search(found.group(1)), (name, "names no gslb metric")
        used = [e for e in exprs if re.search(rf'\b{label}=~"\$(?:{name}|{{{name}}})"', e)]
        assert used, f"no query uses ${name}"
    for expr in exprs:
        for selector in re.findall(r"\bgslb_[a-z0-9_]+(\{[^}]*\})?", expr):
            assert 'instance=~"$instance"' in selector, expr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool (Debian prometheus)")
def test_dashboard_queries_are_promql(tmp_path: Path) -> None:
    """Every panel query and variable selector, the variables set to All, as a recording
    rule: `promtool check rules` parses them."""

    def substituted(expr: str) -> str:
        expr = expr.replace("$__rate_interval", "1m")
        return re.sub(r"\$\{?([a-z_]+)\}?", ".*", expr)

    selectors = [
        LABEL_VALUES.match(variable_query(v)).group(1)  # type: ignore[union-attr]
        for name, v in dashboard_variables().items()
        if name in FILTERED_BY
    ]
    rules = [
        {"record": f"dashboard:query{i}", "expr": substituted(expr)}
        for i, expr in enumerate(dashboard_exprs() + selectors)
    ]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_alert_rules_name_exported_metrics(exported: set[str]) -> None:
    rules = rule_list()
    for rule in rules:
        assert rule["alert"] and rule["expr"] and rule["labels"]["severity"], rule
        names = set(METRIC.findall(rule["expr"]))
        assert names, rule["alert"]
        assert names <= exported, (rule["alert"], names - exported)
    alerts = {rule["alert"]: rule["expr"] for rule in rules}
    assert 'gslb_region_state{state="down"}' in alerts["GslbRegionDown"]
    assert "gslb_dns_fail_open_total" in alerts["GslbFailOpen"]
    assert "gslb_dns_answers_total" in alerts["GslbTrafficUneven"]
    assert "histogram_quantile(0.99" in alerts["GslbDnsP99High"]
    assert "histogram_quantile(0.99" in alerts["GslbProxyP99High"]


def test_dashboard_names_exported_metrics(exported: set[str]) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 15
    queries = [variable_query(v) for v in dashboard_variables().values() if v["type"] == "query"]
    used = set().union(*(METRIC.findall(e) for e in exprs + queries))
    assert used <= exported, used - exported
    # every metric family a component exports has a place on the dashboard
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in exported}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used}
    assert families <= shown, families - shown


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool (Debian prometheus)")
def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    for args in (
        ["check", "rules", str(RULES)],
        ["check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        ["test", "rules", str(DEPLOY / "prometheus" / "tests" / "gslb-alerts.test.yml")],
    ):
        run = subprocess.run(["promtool", *args], capture_output=True, text=True, check=False)
        assert run.returncode == 0, (args, run.stdout, run.stderr)


def test_compose_paths_exist() -> None:
    for name, service in SERVICES.items():
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), (name, source)
        command = service.get("command", [])
        for arg in command:
            if arg.startswith("/app/"):
                assert in_repo(arg).exists(), (name, arg)
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)  # nothing published beyond the host


def test_compose_topology_matches_its_config() -> None:
    config_dir = in_repo(SERVICES["dns"]["command"][2])
    config = load_config(str(config_dir))  # what `gslb check` does
    proxies = {n: s for n, s in SERVICES.items() if s.get("command", [""])[0] == "proxy"}
    assert {s["command"][4] for s in proxies.values()} == set(config.regions)
    for service in proxies.values():
        region = config.regions[service["command"][4]]
        address = service["networks"]["gslb"]["ipv4_address"]
        endpoints = {e.address for members in region.endpoints.values() for e in members}
        assert endpoints == {address}
        assert region.proxy is not None and region.health is not None
        assert region.health.port == region.proxy.admin.port if region.proxy.admin else False
        for backend in region.proxy.backends:
            assert backend.host in SERVICES, backend
            assert SERVICES[backend.host]["command"][1] == region.name
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        t
        for job in prometheus["scrape_configs"]
        for sc in job["static_configs"]
        for t in sc["targets"]
    }
    api_port = config.settings.api_listen.port
    nodes = {n for n, s in SERVICES.items() if s.get("command", [""])[0] == "serve"}
    assert nodes == {"dns", "dns2"}
    assert config.settings.cluster is not None  # the two nodes share state through etcd
    assert config.settings.cluster.etcd_endpoints == ("http://etcd:2379",)
    assert "etcd" in SERVICES
    expected = {f"{n}:{api_port}" for n in nodes} | {
        f"{name}:{config.regions[s['command'][4]].proxy.admin.port}"  # type: ignore[union-attr]
        for name, s in proxies.items()
    }
    assert targets == expected


def test_prometheus_and_grafana_mounts_line_up() -> None:
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    mounts = dict(v.split(":")[1::-1] for v in SERVICES["prometheus"]["volumes"])
    for pattern in prometheus["rule_files"]:
        directory, glob = pattern.rsplit("/", 1)
        assert list(in_repo(mounts[directory]).glob(glob)), pattern
    grafana = dict(v.split(":")[1::-1] for v in SERVICES["grafana"]["volumes"])
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "gslb.yml").read_text()
    )
    dashboards = in_repo(grafana[provider["providers"][0]["options"]["path"]])
    assert (dashboards / "gslb.json").is_file()
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    # the dashboard's datasource variable preselects the default datasource of its type
    (provisioned,) = datasource["datasources"]
    assert provisioned["isDefault"] is True
    assert provisioned["type"] == dashboard_variables()["datasource"]["query"]
    assert f'"uid": "{provisioned["uid"]}"' not in DASHBOARD.read_text()
    assert "/etc/grafana/provisioning" in grafana


def test_dockerfile_copies_what_exists() -> None:
    text = (ROOT / "Dockerfile").read_text()
    copies = re.findall(r"^COPY\s+(.+?)\s+\S+$", text, flags=re.M)
    assert copies
    for line in copies:
        for source in line.split():
            assert (ROOT / source).exists(), source
    assert 'ENTRYPOINT ["gslb"]' in text
    assert "USER gslb" in text


def test_compose_healthchecks_ask_what_each_service_serves() -> None:
    """The image's HEALTHCHECK asks gslb serve's API; each other role built from the image
    overrides it with a URL that role answers."""
    config = load_config(str(in_repo(SERVICES["dns"]["command"][2])))
    image = read_image()
    checked = set()
    for name, service in SERVICES.items():
        if "build" not in service:
            continue
        test = service.get("healthcheck", {}).get("test", ["CMD", *image.healthcheck])
        assert test[:4] == ["CMD", "python", "-m", "gslb.healthcheck"], (name, test)
        url = urlsplit(healthcheck.target(test[4:], service.get("environment", {})))
        assert url.hostname == "127.0.0.1", (name, url)
        command = service.get("command", [])
        if command[:1] == ["serve"]:
            assert config.settings.api_listen.host == "0.0.0.0"
            assert (url.port, url.path) == (config.settings.api_listen.port, "/healthz"), name
        elif command[:1] == ["proxy"]:
            admin = config.regions[command[4]].proxy.admin  # type: ignore[union-attr]
            assert admin is not None and (url.port, url.path) == (admin.port, "/health"), name
        else:  # a demo backend: on the port the proxies' backend URLs name
            assert service["entrypoint"] == ["python", "-m", "gslb.demo_backend"], name
            assert "--port" not in command, name
            ports = {b.port for r in config.regions.values() if r.proxy for b in r.proxy.backends}
            assert ports == {url.port} and url.path == "/health", (name, ports)
        checked.add(command[0] if command[0] in ("serve", "proxy") else "backend")
    assert checked == {"serve", "proxy", "backend"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_units_verify(tmp_path: Path) -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.name for u in units} == {"gslb.service", "gslb-proxy@.service"}
    names = []
    for unit in units:
        text = unit.read_text().replace("/usr/local/bin/gslb", "/bin/true")
        name = unit.name.replace("@.", "@eu-west.")
        (tmp_path / name).write_text(text)
        names.append(f"./{name}")
    run = subprocess.run(
        ["systemd-analyze", "verify", *names], capture_output=True, text=True, cwd=tmp_path
    )
    assert run.returncode == 0 and not run.stderr.strip(), run.stderr


def test_metrics_doc_lists_every_exported_metric(exported: set[str]) -> None:
    text = (ROOT / "docs" / "metrics.md").read_text()
    for name in exported:
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert f"`{family}`" in text, name
    alerts = {rule["alert"] for rule in rule_list()}
    for alert in alerts:
        assert f"`{alert}`" in text, alert
