"""The container image runs as shipped, checked without Docker: the files the Dockerfile
copies are laid out in a directory as the image has them, and its default command (the
ENTRYPOINT and CMD, only the listen addresses moved to 127.0.0.1 port 0) runs there as an
unprivileged user, answers DNS, and passes the image's HEALTHCHECK. Also: the config the
image serves listens on every interface and writes state where the user may, and the
dependencies are pinned (deploy/constraints.txt)."""

from __future__ import annotations

import ipaddress
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from gslb import healthcheck
from gslb.config import load_config
from gslb.model import ServerSettings
from tests.conftest import Served, launch_serve
from tests.dockerfile_layout import ROOT, Image, host_path, lay_out, read_image
from tests.test_config_schema import errors

TOKEN = "image-test-token"
CONSTRAINTS = ROOT / "deploy" / "constraints.txt"
EU_WEST = {"198.51.100.10", "198.51.100.11"}  # zones/regions/eu-west.yaml
# What the image's python is (python:3.11-slim) for the markers of the requirements.
IMAGE_MARKERS = {"sys_platform": "linux", "platform_system": "Linux", "python_version": "3.11"}


def healthcheck_args(image: Image) -> list[str]:
    """The arguments of the HEALTHCHECK's `python -m gslb.healthcheck`."""
    assert image.healthcheck[:3] == ["python", "-m", "gslb.healthcheck"], image.healthcheck
    return image.healthcheck[3:]


def config_dir_of(image: Image) -> str:
    args = image.argv
    assert args[:2] == ["gslb", "serve"], args
    return args[args.index("--config") + 1]


@dataclass(frozen=True)
class Layout:
    root: Path  # the image's / on this host
    settings: dict[str, Any]  # the gslb.yaml the image serves, as in the image

    def host(self, image_path: str) -> Path:
        return host_path(self.root, image_path)


@pytest.fixture(scope="module")
def image() -> Image:
    return read_image()


@pytest.fixture(scope="module")
def layout(image: Image) -> Iterator[Layout]:
    """The image's files under a directory others may enter (pytest's tmp is 0700), the
    absolute paths of its config pointed into it (Docker runs the image at /)."""
    root = Path(tempfile.mkdtemp(prefix="gslb-image-"))
    try:
        root.chmod(0o755)
        lay_out(image, root)
        settings = host_path(root, config_dir_of(image)) / "gslb.yaml"
        text = settings.read_text()
        document = yaml.safe_load(text)
        for path in (document["geoip"]["database"], document["state"]["path"]):
            if path.startswith("/"):  # a relative path is the config directory's, here too
                text = text.replace(path, str(host_path(root, path)))
        settings.write_text(text)
        yield Layout(root, document)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def settings_of(image: Image, layout: Layout) -> ServerSettings:
    return load_config(str(layout.host(config_dir_of(image)))).settings


# --- who runs it: the image's USER is a system account; here `nobody` stands in ---------


@dataclass(frozen=True)
class Runner:
    prefix: list[str]  # prepended to every command
    uid: int | None  # None: this test's own user
    why_not: str  # why not unprivileged, when uid is None


def unprivileged(root: Path, image: Image) -> Runner:
    if os.geteuid() != 0:
        return Runner([], None, "not root: cannot switch to an unprivileged user")
    if shutil.which("setpriv") is None:
        return Runner([], None, "no setpriv (util-linux) to switch users")
    nobody = pwd.getpwnam("nobody")
    prefix = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import aiohttp, dnslib, geoip2, yaml, gslb.cli"],
        capture_output=True,
        text=True,
        cwd=host_path(root, image.workdir),
        check=False,
    )
    if probe.returncode != 0:
        reason = probe.stderr.strip().splitlines()[-1:] or ["?"]
        return Runner([], None, f"user nobody cannot run {sys.executable}: {reason[0]}")
    for directory in image.writable_by(image.user):  # what `chown gslb:gslb` does
        os.chown(host_path(root, directory), nobody.pw_uid, nobody.pw_gid)
    return Runner(prefix, nobody.pw_uid, "")


def host_argv(argv: list[str], root: Path) -> list[str]:
    """An argv of the image on this host: its programs from this venv, its paths in `root`."""
    program, *args = argv
    start = {"gslb": [sys.executable, "-m", "gslb"], "python": [sys.executable]}[program]
    return start + [str(host_path(root, a)) if a.startswith("/") else a for a in args]


@pytest.fixture(scope="module")
def node(image: Image, layout: Layout) -> Iterator[tuple[Served, Runner]]:
    """The image's ENTRYPOINT + CMD in the layout, as its user, on 127.0.0.1 port 0."""
    runner = unprivileged(layout.root, image)
    served = launch_serve(
        [
            *runner.prefix,
            *host_argv(image.argv, layout.root),
            *("--dns", "127.0.0.1:0", "--api", "127.0.0.1:0"),
        ],
        layout.host(config_dir_of(image)),
        env={**image.env, "GSLB_API_TOKEN": TOKEN},
        cwd=layout.host(image.workdir),
    )
    yield served, runner
    served.stop()


# --- the Dockerfile and the config it serves, read ----------------------------------------


def test_image_runs_gslb_serve_as_its_own_user_with_a_healthcheck(image: Image) -> None:
    assert image.user == "gslb"
    assert image.entrypoint == ["gslb"] and image.cmd[0] == "serve", image.argv
    assert image.healthcheck, "no HEALTHCHECK"
    assert image.healthcheck[0] in ("gslb", "python"), "slim images have no curl or wget"
    assert {"interval", "timeout", "retries"} <= set(image.healthcheck_options)
    assert image.order.index("HEALTHCHECK") > image.order.index("USER")


def test_container_config_listens_on_every_interface(image: Image, layout: Layout) -> None:
    settings = settings_of(image, layout)
    assert settings.dns_listen, "no DNS listener"
    for listen in settings.dns_listen:
        assert listen.host == "0.0.0.0", listen  # 127.0.0.1 would be unreachable from -p
        assert {f"{listen.port}/udp", f"{listen.port}/tcp"} <= set(image.expose), image.expose
        capable = any("cap_net_bind_service" in run for run in image.runs)  # setcap
        assert listen.port >= 1024 or capable, "below 1024 needs CAP_NET_BIND_SERVICE"
    assert settings.api_listen.host == "0.0.0.0"
    assert str(settings.api_listen.port) in image.expose
    assert settings.token_env == "GSLB_API_TOKEN" and settings.token_file is None
    # the HEALTHCHECK asks this node's API
    url = urlsplit(healthcheck.target(healthcheck_args(image), image.env))
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", settings.api_listen.port, "/healthz")


def test_container_config_paths_are_the_images(image: Image, layout: Layout) -> None:
    document = layout.settings
    assert errors(json.loads((ROOT / "schemas" / "gslb.schema.json").read_text()), document) == []
    database, state = document["geoip"]["database"], document["state"]["path"]
    assert database.startswith("/") and layout.host(database).is_file(), database
    # state in the directory the Dockerfile makes writable for USER, outside WORKDIR (root's)
    assert state.startswith("/"), state
    assert str(Path(state).parent) in image.writable_by(image.user), state
    assert not state.startswith(image.workdir.rstrip("/") + "/")


def test_dependencies_are_installed_at_pinned_versions(image: Image) -> None:
    installs = [run for run in image.runs if "pip install" in run]
    assert len(installs) == 1, installs
    assert "--constraint deploy/constraints.txt ." in installs[0], installs[0]
    copied = [c for c in image.copies if "deploy/constraints.txt" in c.sources]
    assert copied and copied[0].dest in (f"{image.workdir}/deploy/", f"{image.workdir}/deploy")


def test_nothing_the_dockerfile_copies_is_left_out_of_the_build_context(image: Image) -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ".venv" in patterns  # the build context stays small
    for source in (s for copy in image.copies for s in copy.sources):
        path = PurePosixPath(source)
        for pattern in patterns:
            bare = pattern.removeprefix("**/")
            assert not any(fnmatch(str(p), bare) for p in (path, *path.parents)), (source, pattern)


def pins() -> dict[str, Requirement]:
    lines = [line.strip() for line in CONSTRAINTS.read_text().splitlines()]
    found = [Requirement(line) for line in lines if line and not line.startswith("#")]
    for pin in found:
        assert len(pin.specifier) == 1 and next(iter(pin.specifier)).operator == "==", pin
    return {canonicalize_name(pin.name): pin for pin in found}


def needed(requirements: list[str]) -> list[Requirement]:
    parsed = [Requirement(text) for text in requirements]
    return [r for r in parsed if r.marker is None or r.marker.evaluate(IMAGE_MARKERS)]


def test_constraints_pin_exactly_what_pip_install_pulls() -> None:
    pinned = pins()
    version = {name: next(iter(pin.specifier)).version for name, pin in pinned.items()}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reached: set[str] = set()
    unchecked: set[str] = set()
    todo = needed(project["dependencies"])
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not pinned: run make constraints"
        assert requirement.specifier.contains(version[name], prereleases=True), (requirement, name)
        if name in reached:
            continue
        reached.add(name)
        try:  # the pin's own requirements, when this venv has that very version
            installed = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed is None or installed.version != version[name]:
            unchecked.add(name)
            continue
        todo += needed(installed.requires or [])  # markers on `extra` are false: no extras
    if not unchecked:  # every pin's requirements seen: nothing pinned that is not pulled
        assert reached == set(pinned), set(pinned) - reached


# --- the default command, run ---------------------------------------------------------------


def test_default_command_answers_dns(node: tuple[Served, Runner]) -> None:
    served, _ = node
    subnet = ipaddress.ip_network("81.2.69.0/24")  # London, in the demo GeoIP database
    ecs = dns.edns.ECSOption(str(subnet.network_address), subnet.prefixlen)
    query = dns.message.make_query("www.gslb.example.com", "A", use_edns=0, options=[ecs])
    for ask in (dns.query.udp, dns.query.tcp):
        reply = ask(query, "127.0.0.1", port=served.dns_port, timeout=5)
        assert reply.rcode() == dns.rcode.NOERROR
        assert {rd.to_text() for rrset in reply.answer for rd in rrset} <= EU_WEST
        assert reply.answer, ask


def run_healthcheck(
    image: Image, layout: Layout, runner: Runner, url: str
) -> subprocess.CompletedProcess[str]:
    """The HEALTHCHECK command as the image's user, the URL it asks moved to `url`."""
    default = healthcheck.target(healthcheck_args(image), image.env)
    argv = [url if arg == default else arg for arg in image.healthcheck]
    return subprocess.run(
        [*runner.prefix, *host_argv(argv, layout.root)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **image.env, "GSLB_HEALTHCHECK_URL": url},
        cwd=layout.host(image.workdir),
        check=False,
    )


def test_healthcheck_passes_against_the_default_command(
    image: Image, layout: Layout, node: tuple[Served, Runner]
) -> None:
    served, runner = node
    done = run_healthcheck(image, layout, runner, f"http://127.0.0.1:{served.api_port}/healthz")
    assert done.returncode == 0, done.stderr


def api_post(served: Served, path: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{served.api_port}{path}",
        data=json.dumps({"reason": "image test"}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        status: int = response.status
        return status


def test_default_command_runs_unprivileged_and_keeps_state_in_the_volume(
    image: Image, layout: Layout, node: tuple[Served, Runner]
) -> None:
    served, runner = node
    if runner.uid is None:
        pytest.skip(f"the unprivileged run: {runner.why_not}")
    status = Path(f"/proc/{served.process.pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert set(uids) == {str(runner.uid)}, uids
    # WORKDIR and the config are root's: the user cannot write there ...
    workdir = layout.host(image.workdir)
    write = "import sys; open(sys.argv[1], 'w')"
    probe = [*runner.prefix, sys.executable, "-c", write, str(workdir / "state.json")]
    assert subprocess.run(probe, capture_output=True, check=False).returncode != 0
    # ... and a mutation saves the admin state in the directory the Dockerfile chowns
    state = layout.host(layout.settings["state"]["path"])
    try:
        assert api_post(served, "/v1/regions/eu-west/disable") == 200
        assert state.is_file() and state.stat().st_uid == runner.uid
        saved: dict[str, Any] = json.loads(state.read_text())
        assert "eu-west" in json.dumps(saved)
    finally:
        api_post(served, "/v1/regions/eu-west/enable")


# --- python -m gslb.healthcheck -------------------------------------------------------------


class Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_healthcheck_fails_on_an_error_status_or_no_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert healthcheck.main([f"{base}/healthz"], {}) == 0
        assert healthcheck.main([], {"GSLB_HEALTHCHECK_URL": f"{base}/healthz"}) == 0
        assert healthcheck.main([f"{base}/health"], {}) == 1
        assert "answered 503" in capsys.readouterr().err
    finally:
        server.shutdown()
        server.server_close()
    assert healthcheck.main([f"{base}/healthz"], {}) == 1  # nothing listens there now
    assert "cannot reach" in capsys.readouterr().err
    assert healthcheck.target([], {}) == "http://127.0.0.1:8053/healthz"
