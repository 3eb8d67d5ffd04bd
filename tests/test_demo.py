"""`gslb demo`: the printed lines work as printed, failover moves Europe, Ctrl-C stops it all.

One real demo (DNS, API, three proxies, six backends) runs for the module; the
commands it prints are run through bash exactly as printed when dig and curl
are installed, and the same steps are also checked with dnspython and urllib.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.message
import dns.query
import dns.rdatatype
import pytest

from gslb.config import load_config
from gslb.demo_layout import DemoPorts, plan_demo
from gslb.demo_text import Expected, instructions
from tests.test_status_page import CHROMIUM, render

ROOT = Path(__file__).resolve().parent.parent
READY_LINE = "Ctrl-C stops everything."
EUROPE, AMERICA, OCEANIA = "81.2.69.0/24", "8.8.8.0/24", "1.1.1.0/24"
REGION_IP = {"ap-southeast": "127.0.1.1", "eu-west": "127.0.2.1", "us-east": "127.0.3.1"}


# Every port is 0: the demo chooses free ones and prints them; no test uses a fixed port.
ANY_PORT = ("--dns-port", "0", "--api-port", "0", "--proxy-port", "0", "--backend-port", "0")


@dataclass(frozen=True)
class Ports:
    """The ports a demo chose, read from its banner."""

    dns: int
    api: int
    proxy: int
    proxy_admin: int
    backend: int

    @classmethod
    def read(cls, lines: list[str]) -> Ports:
        text = "\n".join(lines)
        dns_port = re.search(r"^  DNS +127\.0\.0\.1:(\d+) ", text, re.M)
        api_port = re.search(r"^  admin API +http://127\.0\.0\.1:(\d+)/", text, re.M)
        region = re.search(
            r"proxy http://[\d.]+:(\d+)/  admin http://[\d.]+:(\d+)/status"
            r"  backends \S+ [\d.]+:(\d+)",
            text,
        )
        assert dns_port and api_port and region, text
        return cls(
            int(dns_port.group(1)),
            int(api_port.group(1)),
            int(region.group(1)),
            int(region.group(2)),
            int(region.group(3)),
        )

    def addresses(self) -> list[tuple[str, int]]:
        """Every TCP address the demo serves."""
        out = [("127.0.0.1", self.dns), ("127.0.0.1", self.api)]
        for ip in REGION_IP.values():
            backends = [ip.rsplit(".", 1)[0] + f".{n}" for n in (11, 12)]
            out += [(ip, self.proxy), (ip, self.proxy_admin)]
            out += [(backend, self.backend) for backend in backends]
        return out


@dataclass
class Demo:
    process: subprocess.Popen[str]
    lines: list[str]
    ports: Ports
    rest: queue.Queue[str | None]
    tmp: Path  # its $TMPDIR

    @property
    def dns_port(self) -> int:
        return self.ports.dns

    @property
    def api_port(self) -> int:
        return self.ports.api

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def token(self) -> str:
        match = re.search(r"API token\s+(\S+)", self.text)
        assert match, self.text
        return match.group(1)

    def commands(self) -> list[str]:
        return [line.strip() for line in self.lines if re.match(r"\s+(dig|curl) ", line)]


def _reader(stream: object, into: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line.rstrip("\n"))
    into.put(None)


Started = tuple[subprocess.Popen[str], list[str], list[str], "queue.Queue[str | None]"]


def demo_dirs(tmp: Path) -> list[Path]:
    """The demo's temporary directories in `tmp` (its $TMPDIR)."""
    return sorted(tmp.glob("gslb-demo-*"))


def start_demo(*args: str, tmp: Path, command: Sequence[str] = ("-m", "gslb", "demo")) -> Started:
    """Run `gslb demo` (every port 0 unless `args` give one) with $TMPDIR `tmp` until it
    printed its banner or exited: stdout and stderr lines so far."""
    environ = {k: v for k, v in os.environ.items() if k != "GSLB_API_TOKEN"}
    process = subprocess.Popen(
        [sys.executable, *command, *ANY_PORT, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**environ, "TMPDIR": str(tmp)},
    )
    out: queue.Queue[str | None] = queue.Queue()
    err: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_reader, args=(process.stdout, out), daemon=True).start()
    threading.Thread(target=_reader, args=(process.stderr, err), daemon=True).start()
    lines: list[str] = []
    while True:
        line = out.get(timeout=60)
        if line is None:
            break
        lines.append(line)
        if line == READY_LINE:
            break
    errors: list[str] = []
    if process.poll() is not None or line is None:
        process.wait(timeout=30)
        while (item := err.get(timeout=10)) is not None:
            errors.append(item)
    return process, lines, errors, out


@contextlib.contextmanager
def stopped_at_the_end(process: subprocess.Popen[str]) -> Iterator[None]:
    """A failed assertion must not leave a demo running, with its ports and directory."""
    try:
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    tmp = tmp_path_factory.mktemp("demo-tmpdir")
    process, lines, errors, rest = start_demo(tmp=tmp)
    assert lines and lines[-1] == READY_LINE, "\n".join(lines + errors)
    yield Demo(process, lines, Ports.read(lines), rest, tmp)
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def ask(demo: Demo, subnet: str) -> list[str]:
    query = dns.message.make_query(
        "www.gslb.example.com", "A", use_edns=0, options=[dns.edns.ECSOption.from_text(subnet)]
    )
    reply = dns.query.udp(query, "127.0.0.1", port=demo.dns_port, timeout=2)
    return [item.address for rrset in reply.answer for item in rrset if rrset.rdtype == 1]


def http(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, method="POST" if token else "GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read().decode()


def test_plan_replaces_endpoints_with_region_proxies(tmp_path: Path) -> None:
    config = load_config(str(ROOT / "zones"))
    layout = plan_demo(config, DemoPorts(), geoip=None, state_path=str(tmp_path / "s.json"))
    for name, text in layout.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    for zone_file in layout.zone_files:
        shutil.copy(zone_file, tmp_path)
    generated = load_config(str(tmp_path))
    assert sorted(generated.regions) == sorted(config.regions)
    addresses = set()
    for name, region in generated.regions.items():
        proxy = layout.region(name)
        assert {e.address for members in region.endpoints.values() for e in members} == {
            proxy.address
        }
        assert region.health is not None and region.health.port == proxy.admin.port
        assert region.proxy is not None and len(region.proxy.backends) >= 2
        assert (region.lat, region.lon) == (config.regions[name].lat, config.regions[name].lon)
        addresses.add(proxy.address)
    assert len(addresses) == len(generated.regions)


def test_a_token_from_the_environment_is_used_and_said_so(tmp_path: Path) -> None:
    config = load_config(str(ROOT / "zones"))
    layout = plan_demo(config, DemoPorts(dns=53535), geoip=None, state_path="s.json")
    expected = Expected({EUROPE: "eu-west"}, "us-east")
    text = instructions(layout, "my-token", False, expected, str(tmp_path))
    assert "API token    my-token   (from GSLB_API_TOKEN)" in text
    assert (
        "-H 'Authorization: Bearer my-token' http://127.0.0.1:8053/v1/regions/eu-west/disable"
        in text
    )
    assert "-p 53535" in text and "# now us-east (127.0.3.1)" in text


def test_each_continent_gets_its_region(demo: Demo) -> None:
    assert ask(demo, EUROPE) == [REGION_IP["eu-west"]]
    assert ask(demo, AMERICA) == [REGION_IP["us-east"]]
    assert ask(demo, OCEANIA) == [REGION_IP["ap-southeast"]]


def test_proxies_reach_their_backends(demo: Demo) -> None:
    seen = set()
    for _ in range(4):
        status, body = http(f"http://{REGION_IP['eu-west']}:{demo.ports.proxy}/hello")
        assert status == 200 and body.startswith("region=eu-west backend=euw")
        seen.add(body.split()[1])
    assert seen == {"backend=euw1", "backend=euw2"}


def test_disable_moves_europe_to_us_east_and_back(demo: Demo, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{demo.api_port}/v1/regions/eu-west"
    status, body = http(f"{base}/disable", demo.token())
    assert status == 200 and json.loads(body)["admin"] == "disabled"
    try:
        assert ask(demo, EUROPE) == [REGION_IP["us-east"]]
        regions = json.loads(http(f"http://127.0.0.1:{demo.api_port}/v1/status")[1])["regions"]
        assert {r["name"]: r["admin"] for r in regions}["eu-west"] == "disabled"
        if CHROMIUM is not None:  # and the status page shows it
            page = render(f"http://127.0.0.1:{demo.api_port}/", tmp_path / "profile")
            assert page.states("tr", "region") == {
                "ap-southeast": "up",
                "eu-west": "disabled",
                "us-east": "up",
            }
    finally:
        http(f"{base}/enable", demo.token())
    assert ask(demo, EUROPE) == [REGION_IP["eu-west"]]


@pytest.mark.skipif(not (shutil.which("dig") and shutil.which("curl")), reason="needs dig, curl")
def test_every_printed_command_works_as_printed(demo: Demo) -> None:
    commands = demo.commands()
    assert sum(c.startswith("dig ") for c in commands) >= 4
    assert sum("curl " in c for c in commands) >= 8
    for command in commands:
        run = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, timeout=20, check=False
        )
        assert run.returncode == 0, (command, run.stdout, run.stderr)
        out = run.stdout.strip()
        expected_ip = re.search(r"#.*\((127\.\d+\.\d+\.\d+)\)$", command)
        if command.startswith("dig "):
            assert expected_ip, command
            assert out.splitlines() == [expected_ip.group(1)], command
        elif "/v1/regions/" in command or "/v1/explain" in command:
            assert json.loads(out)["region"] == "eu-west", command
        elif "/v1/status" in command:
            assert len(json.loads(out)["regions"]) == 3
        elif "/metrics" in command:
            assert "grep" in command and out.startswith("gslb_"), (command, out)
        else:  # through a proxy
            assert f":{demo.ports.proxy}/" in command, command
            assert out.startswith("region=eu-west backend=euw"), (command, out)


def test_status_page_and_metrics_urls(demo: Demo) -> None:
    status, page = http(f"http://127.0.0.1:{demo.api_port}/")
    assert status == 200 and "<html" in page.lower()
    assert f"http://127.0.0.1:{demo.api_port}/" in demo.text
    _, metrics = http(f"http://{REGION_IP['eu-west']}:{demo.ports.proxy_admin}/metrics")
    assert "gslb_proxy_backend_available" in metrics


def test_a_taken_port_is_named(demo: Demo, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process, _, errors, _ = start_demo("--api-port", str(port), tmp=tmp_path)
    assert process.returncode == 1
    message = "\n".join(errors)
    assert f"127.0.0.1:{port}" in message and "--api-port" in message, message
    assert demo_dirs(tmp_path) == []


def test_a_second_demo_says_the_proxy_port_is_taken(demo: Demo, tmp_path: Path) -> None:
    process, _, errors, _ = start_demo("--proxy-port", str(demo.ports.proxy), tmp=tmp_path)
    assert process.returncode == 1
    message = "\n".join(errors)
    assert f"127.0.1.1:{demo.ports.proxy}" in message and "--proxy-port" in message, message


def test_ctrl_c_stops_everything(demo: Demo) -> None:
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(timeout=30) == 0
    rest = []
    while (line := demo.rest.get(timeout=10)) is not None:
        rest.append(line)
    assert rest[-1:] == ["gslb demo: stopped"]
    assert demo_dirs(demo.tmp) == []
    for host, port in demo.ports.addresses():
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect((host, port))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", demo.dns_port))


def test_sigterm_stops_the_demo_and_removes_its_directory(tmp_path: Path) -> None:
    before = demo_dirs(tmp_path)
    process, lines, errors, rest = start_demo(tmp=tmp_path)
    with stopped_at_the_end(process):
        assert lines and lines[-1] == READY_LINE, "\n".join(lines + errors)
        running = demo_dirs(tmp_path)
        assert len(running) == len(before) + 1
        assert f"  config and logs in {running[-1]} (removed when the demo stops)" in lines
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    after = []
    while (line := rest.get(timeout=10)) is not None:
        after.append(line)
    assert after[-1:] == ["gslb demo: stopped"]
    assert demo_dirs(tmp_path) == before


# `gslb demo` sending itself a signal while it starts (its config written, before any
# child runs): deterministic, where a signal from outside could not aim at that moment.
SIGNAL_WHILE_STARTING = """
import os, signal, sys
import gslb.cli
import gslb.demo

answers = gslb.demo.expected_answers
def expected_answers(config):
    os.kill(os.getpid(), signal.{name})
    return answers(config)
gslb.demo.expected_answers = expected_answers
sys.argv[1:1] = ["demo"]
sys.exit(gslb.cli.main())
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_while_starting_removes_the_directory_too(tmp_path: Path, name: str) -> None:
    """Before its event loop runs, SIGTERM's (and SIGHUP's) default action ended the demo
    on the spot and left its directory behind."""
    script = SIGNAL_WHILE_STARTING.format(name=name)
    process, lines, errors, _ = start_demo(tmp=tmp_path, command=("-c", script))
    assert process.returncode == 0, "\n".join(lines + errors)
    assert lines == ["gslb demo: stopped"], "\n".join(lines + errors)
    assert demo_dirs(tmp_path) == []


def test_a_killed_demo_takes_its_servers_with_it(tmp_path: Path) -> None:
    """SIGKILL leaves no time to clean up: the children must go by themselves (their
    parent-death signal), or the next `make demo` finds its ports taken. (Nor can the demo
    remove its directory then: it is in `tmp_path`, not /tmp.)"""
    process, lines, errors, _ = start_demo(tmp=tmp_path)
    with stopped_at_the_end(process):
        assert lines and lines[-1] == READY_LINE, "\n".join(lines + errors)
        chosen = Ports.read(lines)
        ports = [("127.0.0.1", chosen.api)] + [(ip, chosen.proxy) for ip in REGION_IP.values()]
        for host, port in ports:
            socket.create_connection((host, port), timeout=2).close()  # serving now
        process.kill()
        process.wait(timeout=10)
    deadline = time.monotonic() + 30
    for host, port in ports:
        while True:
            try:
                socket.create_connection((host, port), timeout=2).close()
            except ConnectionRefusedError:
                break
            assert time.monotonic() < deadline, f"{host}:{port} still served after SIGKILL"
            time.sleep(0.1)  # polling a port: there is no event to wait on
