"""Probes against real servers that the tests start on loopback addresses (127.0.0.2, 127.0.0.3)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gslb.health.probes import Prober, ProbeResult, check_url
from gslb.model import CheckSpec

HOST = "127.0.0.2"
OTHER = "127.0.0.3"


@dataclass
class FlipServer:
    """An aiohttp server whose /health answers `status`; it records what it was asked."""

    host: str
    status: int = 200
    port: int = 0
    hosts_seen: list[str] = field(default_factory=list)
    queries_seen: list[str] = field(default_factory=list)
    peers_seen: list[object] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.hosts_seen.append(request.headers.get("Host", ""))
        self.queries_seen.append(request.query_string)
        self.peers_seen.append(
            request.transport.get_extra_info("peername") if request.transport else None
        )
        if self.status in (301, 302):
            raise web.HTTPFound("/elsewhere")
        return web.Response(status=self.status, text="x" * 10)


async def start_flip_server(
    host: str, ssl_context: ssl.SSLContext | None = None
) -> tuple[FlipServer, web.AppRunner]:
    server = FlipServer(host)
    app = web.Application()
    app.router.add_get("/health", server.handle)
    app.router.add_get("/elsewhere", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind((host, 0))
    server.port = sock.getsockname()[1]
    await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    return server, runner


@pytest.fixture
async def flip() -> AsyncIterator[FlipServer]:
    server, runner = await start_flip_server(HOST)
    yield server
    await runner.cleanup()


@pytest.fixture
async def prober() -> AsyncIterator[Prober]:
    async with Prober() as p:
        yield p


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on OTHER that is bound but not listening: connecting to it is refused, reliably."""
    sock = socket.socket()
    sock.bind((OTHER, 0))
    yield sock.getsockname()[1]
    sock.close()


def http(**changes: Any) -> CheckSpec:
    return replace(CheckSpec(kind="http", timeout=2.0), **changes)


async def test_http_ok_then_flipped_to_503_and_back(flip: FlipServer, prober: Prober) -> None:
    spec = http()
    first = await prober.probe(spec, HOST, flip.port)
    assert first == ProbeResult(True, "HTTP 200", first.latency)
    assert 0 < first.latency < 2
    flip.status = 503
    second = await prober.probe(spec, HOST, flip.port)
    assert (second.ok, second.detail) == (False, "HTTP 503")
    flip.status = 200
    assert (await prober.probe(spec, HOST, flip.port)).ok


async def test_expect_decides_what_is_healthy(flip: FlipServer, prober: Prober) -> None:
    flip.status = 503
    result = await prober.probe(http(expect=503), HOST, flip.port)
    assert (result.ok, result.detail) == (True, "HTTP 503")
    flip.status = 200
    result = await prober.probe(http(expect=503), HOST, flip.port)
    assert (result.ok, result.detail) == (False, "HTTP 200")


async def test_redirect_is_not_followed(flip: FlipServer, prober: Prober) -> None:
    flip.status = 302
    result = await prober.probe(http(), HOST, flip.port)
    assert (result.ok, result.detail) == (False, "HTTP 302")
    assert len(flip.hosts_seen) == 1


async def test_port_from_spec_and_host_header(flip: FlipServer, prober: Prober) -> None:
    assert (await prober.probe(http(port=flip.port), HOST)).ok
    assert (await prober.probe(http(port=flip.port, host="www.example.test"), HOST)).ok
    assert (await prober.probe(http(path="/health?deep=1"), HOST, flip.port)).ok
    assert flip.hosts_seen == [f"{HOST}:{flip.port}", "www.example.test", f"{HOST}:{flip.port}"]
    assert flip.queries_seen == ["", "", "deep=1"]


async def test_every_probe_uses_a_fresh_connection(flip: FlipServer, prober: Prober) -> None:
    for _ in range(3):
        assert (await prober.probe(http(), HOST, flip.port)).ok
    assert len(set(map(str, flip.peers_seen))) == 3


async def test_connection_refused(prober: Prober, refused_port: int) -> None:
    for spec in (http(), CheckSpec(kind="tcp", timeout=2.0)):
        result = await prober.probe(spec, OTHER, refused_port)
        assert (result.ok, result.detail) == (False, "connection refused")


@pytest.mark.parametrize("kind", ["http", "https", "tcp"])
async def test_silent_server_times_out(prober: Prober, kind: str) -> None:
    """The timeout bounds the whole probe: a TLS handshake or a response that never comes."""
    held: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)

    server = await asyncio.start_server(accept_and_say_nothing, OTHER, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await prober.probe(http(kind=kind, timeout=0.2), OTHER, port)
        if kind == "tcp":  # accepting the connection is all a tcp check asks
            assert (result.ok, result.detail) == (True, "connected")
            return
        assert (result.ok, result.detail) == (False, "timeout after 0.2s")
        assert 0.19 <= result.latency < 1.0
        assert held, "the probe did connect"
    finally:
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()


async def test_server_that_hangs_up_without_answering(prober: Prober) -> None:
    async def hang_up(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _r.readuntil(b"\r\n\r\n")
        w.close()

    server = await asyncio.start_server(hang_up, OTHER, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await prober.probe(http(), OTHER, port)
        assert result.ok is False
        assert "closed the connection" in result.detail
    finally:
        server.close()
        await server.wait_closed()


async def test_tcp_connect(flip: FlipServer, prober: Prober) -> None:
    result = await prober.probe(CheckSpec(kind="tcp", timeout=1.0), HOST, flip.port)
    assert (result.ok, result.detail) == (True, "connected")


def test_url_brackets_ipv6_and_keeps_default_ports_implicit() -> None:
    assert str(check_url(http(), "2001:db8::1", 8080)) == "http://[2001:db8::1]:8080/health"
    assert str(check_url(http(path="/h?x=1"), "127.0.0.2", 80)) == "http://127.0.0.2/h?x=1"
    https = CheckSpec(kind="https", path="ready")
    assert str(check_url(https, "::1", 443)) == "https://[::1]/ready"


async def test_probe_before_open_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError):
        await Prober().probe(http(), HOST, 1)


# --- https against a self-signed certificate made for the test ---------------------------------

TLS_NAME = "health.test"


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(cert, key) for CN/SAN health.test and no IP address, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", f"/CN={TLS_NAME}",
         "-addext", f"subjectAltName=DNS:{TLS_NAME}",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_server(self_signed: tuple[Path, Path]) -> AsyncIterator[tuple[FlipServer, list[str]]]:
    cert, key = self_signed
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    sni: list[str] = []

    def record_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni.append(name or "")

    ctx.sni_callback = record_sni
    server, runner = await start_flip_server(HOST, ctx)
    yield server, sni
    await runner.cleanup()


async def test_https_verifies_unless_told_not_to(
    tls_server: tuple[FlipServer, list[str]], prober: Prober
) -> None:
    server, _ = tls_server
    verified = CheckSpec(kind="https", timeout=2.0, port=server.port)
    result = await prober.probe(verified, HOST)
    assert result.ok is False
    assert result.detail.startswith("TLS certificate: "), result.detail
    assert "self-signed" in result.detail or "self signed" in result.detail
    assert server.hosts_seen == []  # refused before any request was sent

    unverified = CheckSpec(kind="https", timeout=2.0, port=server.port, verify_tls=False)
    result = await prober.probe(unverified, HOST)
    assert (result.ok, result.detail) == (True, "HTTP 200")
    server.status = 503
    assert (await prober.probe(unverified, HOST)).detail == "HTTP 503"


async def test_https_sends_spec_host_as_sni_and_checks_the_name(
    tls_server: tuple[FlipServer, list[str]], self_signed: tuple[Path, Path]
) -> None:
    server, sni = tls_server
    trust = ssl.create_default_context(cafile=str(self_signed[0]))
    async with Prober(ssl_context=trust) as prober:
        named = CheckSpec(kind="https", timeout=2.0, host=TLS_NAME)
        result = await prober.probe(named, HOST, server.port)
        assert (result.ok, result.detail) == (True, "HTTP 200")
        assert sni == [TLS_NAME]
        assert server.hosts_seen == [TLS_NAME]

        by_address = CheckSpec(kind="https", timeout=2.0)  # the name checked is then 127.0.0.2
        result = await prober.probe(by_address, HOST, server.port)
        assert result.ok is False
        assert result.detail.startswith("TLS certificate: ")
        assert "mismatch" in result.detail, result.detail
