"""TLS termination in the proxy, over real sockets with real clients (python ssl, curl): the
certificate SNI picks, min_version, ALPN, X-Forwarded-Proto, resumption, the shared
connection cap, reloads that swap certificates, and https:// backends."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from proxyhelpers import Env, Reply, TestBackend, get, make_spec, read_reply
from tlshelpers import Leaf, TestCA, peer_serial

from gslb.model import HostPort, ProxyTlsSpec, TlsCertificate
from gslb.proxy.server import ProxyServer

WWW = "www.example.test"


@dataclass(frozen=True)
class Certs:
    ca: TestCA
    www: Leaf  # www.example.test and 127.0.0.1: the default
    api: Leaf  # *.api.example.test
    other_ca: TestCA  # signs nothing the proxy serves

    def tls(self, *leaves: Leaf, **kw: object) -> ProxyTlsSpec:
        certificates = tuple(TlsCertificate(str(x.cert), str(x.key)) for x in leaves)
        spec = ProxyTlsSpec(listen=HostPort("127.0.0.1", 0), certificates=certificates)
        return dataclasses.replace(spec, **kw)  # type: ignore[arg-type]


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    ca = TestCA.make(tmp_path / "tls")
    return Certs(
        ca,
        ca.issue("www", [WWW]),
        ca.issue("api", ["*.api.example.test"], ips=()),
        TestCA.make(tmp_path / "other", "other CA"),
    )


def client_context(ca: TestCA, **kw: object) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.path))
    context.set_alpn_protocols(["h2", "http/1.1"])  # as browsers and curl: h2 is not taken
    for key, value in kw.items():
        setattr(context, key, value)
    return context


@dataclass
class TlsReply:
    reply: Reply
    serial: int  # of the certificate the proxy showed
    alpn: str | None
    version: str | None


async def tls_get(
    port: int,
    context: ssl.SSLContext,
    name: str | None = WWW,
    path: str = "/",
    headers: str = "",
) -> TlsReply:
    """One request on a fresh TLS connection with SNI `name` (None: no SNI, by address)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=name or ""
    )
    try:
        sslobj = writer.get_extra_info("ssl_object")
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {name or '127.0.0.1'}\r\n{headers}"
            "Connection: close\r\n\r\n".encode()
        )
        reply = await read_reply(reader)
        der = sslobj.getpeercert(binary_form=True)
        return TlsReply(reply, peer_serial(der), sslobj.selected_alpn_protocol(), sslobj.version())
    finally:
        writer.close()


async def tls_proxy(
    env: Env, backends: list[TestBackend], tls: ProxyTlsSpec, **kw: object
) -> ProxyServer:
    proxy = await env.proxy(make_spec(backends, tls=tls, **kw))
    assert proxy.tls_port
    return proxy


def handshakes(proxy: ProxyServer, result: str) -> int:
    return proxy.stats.tls_handshakes.get(result, 0)


# -- SNI, versions, ALPN ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expect"),
    [
        (WWW, "www"),
        ("v2.api.example.test", "api"),
        ("a.b.api.example.test", "www"),  # a wildcard covers one label: the default
        ("unknown.test", "www"),
        (None, "www"),  # no SNI (connected by address): the default
    ],
)
async def test_sni_picks_the_certificate_else_the_default(
    env: Env, certs: Certs, name: str | None, expect: str
) -> None:
    b = await env.backend("b0")
    proxy = await tls_proxy(env, [b], certs.tls(certs.www, certs.api))
    context = client_context(certs.ca)
    if expect != "api" and name not in (WWW, None):
        context.check_hostname = False  # the default certificate does not name it
    got = await tls_get(proxy.tls_port, context, name)
    assert got.serial == getattr(certs, expect).serial
    assert (got.reply.status, got.reply.body) == (200, b"b0")
    assert got.alpn == "http/1.1"


async def test_curl_gets_the_certificate_for_its_name(env: Env, certs: Certs) -> None:
    curl = shutil.which("curl")
    assert curl is not None
    b = await env.backend("b0")
    proxy = await tls_proxy(env, [b], certs.tls(certs.www, certs.api))
    port = proxy.tls_port
    for name in (WWW, "v1.api.example.test"):
        process = await asyncio.create_subprocess_exec(
            curl,
            "-sS",
            "--cacert",
            str(certs.ca.path),
            "--resolve",
            f"{name}:{port}:127.0.0.1",
            "-w",
            "\n%{http_code} %{http_version} %{ssl_verify_result}",
            f"https://{name}:{port}/",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == 0, err
        assert out.decode().split("\n") == ["b0", "200 1.1 0"]


async def test_min_version_13_refuses_a_tls12_client(env: Env, certs: Certs) -> None:
    b = await env.backend("b0")
    proxy = await tls_proxy(env, [b], certs.tls(certs.www, min_version="1.3"))
    old = client_context(certs.ca, maximum_version=ssl.TLSVersion.TLSv1_2)
    # The alert may be lost in the reset of the connection the proxy aborts: either is a no.
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        await tls_get(proxy.tls_port, old)
    got = await tls_get(proxy.tls_port, client_context(certs.ca))
    assert (got.version, got.reply.status) == ("TLSv1.3", 200)
    assert handshakes(proxy, "version") == 1
    metrics = generate_latest(proxy.registry).decode()
    assert 'gslb_proxy_tls_handshakes_total{result="version"} 1.0' in metrics
    assert 'gslb_proxy_tls_handshakes_total{result="ok"} 1.0' in metrics


async def test_min_version_12_takes_a_tls12_client(env: Env, certs: Certs) -> None:
    b = await env.backend("b0")
    proxy = await tls_proxy(env, [b], certs.tls(certs.www))
    old = client_context(certs.ca, maximum_version=ssl.TLSVersion.TLSv1_2)
    got = await tls_get(proxy.tls_port, old)
    assert (got.version, got.alpn, got.reply.status) == ("TLSv1.2", "http/1.1", 200)


# -- what reaches the backend ----------------------------------------------------------------


def forwarded_proto(reply: Reply) -> list[str]:
    headers = json.loads(reply.body)["headers"]
    return [v for k, v in headers if k.lower() == "x-forwarded-proto"]


async def test_x_forwarded_proto_says_how_the_request_came(env: Env, certs: Certs) -> None:
    b = await env.backend("b0")
    proxy = await tls_proxy(env, [b], certs.tls(certs.www))
    lie = "X-Forwarded-Proto: http\r\n"  # what a client sends is replaced
    got = await tls_get(proxy.tls_port, client_context(certs.ca), path="/echo", headers=lie)
    assert forwarded_proto(got.reply) == ["https"]
    plain = await get(proxy.port, "/echo", X_Forwarded_Proto="https")
    assert forwarded_proto(plain) == ["http"]


# -- resumption --------------------------------------------------------------------------------


def blocking_get(
    port: int, context: ssl.SSLContext, session: ssl.SSLSession | None
) -> tuple[bool, ssl.SSLSession | None, bytes]:
    """A request over a blocking SSLSocket offering `session`; (reused, session, body)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with context.wrap_socket(raw, server_hostname=WWW, session=session) as tls:
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {WWW}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):  # the TLS 1.3 tickets come with the answer
            data += chunk
        return tls.session_reused, tls.session, data


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
async def test_a_session_is_resumed(env: Env, certs: Certs, version: ssl.TLSVersion) -> None:
    b = await env.backend("b0")
    proxy = await tls_proxy(env, [b], certs.tls(certs.www, certs.api))
    context = client_context(certs.ca, maximum_version=version)
    reused, session, body = await asyncio.to_thread(blocking_get, proxy.tls_port, context, None)
    assert not reused and session is not None and body.endswith(b"b0")
    reused, _, body = await asyncio.to_thread(blocking_get, proxy.tls_port, context, session)
    assert reused and body.endswith(b"b0")
    assert (handshakes(proxy, "ok"), handshakes(proxy, "resumed")) == (1, 1)


# -- connections: the shared cap, handshake failures -----------------------------------------


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_tls_and_plain_connections_share_max_connections(env: Env, certs: Certs) -> None:
    b = await env.backend("b0")
    proxy = await tls_proxy(env, [b], certs.tls(certs.www), max_connections=1)
    _, plain = await asyncio.open_connection("127.0.0.1", proxy.port)
    await wait_until(lambda: proxy.stats.client_connections == 1 and not proxy.accepting)
    # The TLS port is not read either: the handshake waits in the kernel's backlog.
    waiting = asyncio.ensure_future(tls_get(proxy.tls_port, client_context(certs.ca)))
    done, _ = await asyncio.wait([waiting], timeout=0.3)
    assert not done
    plain.close()
    got = await asyncio.wait_for(waiting, 5)
    assert got.reply.status == 200


async def test_failed_handshakes_are_counted_and_free_their_slot(
    env: Env, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", "gslb.proxy.listener")
    b = await env.backend("b0")
    tls = certs.tls(certs.www, handshake_timeout=0.2)
    proxy = await tls_proxy(env, [b], tls, max_connections=2)
    for _ in range(3):  # plain HTTP on the TLS port
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.tls_port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.read()
        writer.close()
    reader, silent = await asyncio.open_connection("127.0.0.1", proxy.tls_port)
    assert await reader.read() == b""  # says nothing: cut after handshake_timeout
    silent.close()
    await wait_until(lambda: handshakes(proxy, "timeout") == 1)
    assert handshakes(proxy, "error") == 3
    failed = [r for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert len(failed) == 2  # one line per kind of failure, not one per connection
    # None of them kept a slot: max_connections=2 still takes two real clients.
    await wait_until(lambda: proxy.stats.client_connections == 0)
    first, second = await asyncio.gather(
        *(tls_get(proxy.tls_port, client_context(certs.ca)) for _ in range(2))
    )
    assert first.reply.status == second.reply.status == 200
