"""TLS termination in the proxy, over real sockets with real clients (python ssl, curl): the
certificate SNI picks, min_version, ALPN, X-Forwarded-Proto, resumption, the shared
connection cap, reloads that swap certificates, and https:// backends."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import shutil
import signal
import socket
import ssl
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import generate_latest
from proxyhelpers import Env, Reply, TestBackend, get, make_spec, pattern, read_reply
from test_proxy_process import run_proxy, write_region
from test_proxy_websocket import WsBackend
from tlshelpers import Leaf, TestCA, peer_serial

from gslb.certificates import CertificateError
from gslb.model import Backend, CheckSpec, HostPort, ProxySpec, ProxyTlsSpec, TlsCertificate
from gslb.proxy.server import ProxyServer
from gslb.proxy.tls import ServerTls

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


KEPT_GET = f"GET / HTTP/1.1\r\nHost: {WWW}\r\n\r\n".encode()  # keep-alive


async def open_tls(
    port: int, context: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TLS connection with SNI www.example.test, for several requests."""
    return await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=WWW)


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


async def curl_https(ca: TestCA, port: int, name: str = WWW) -> tuple[str, str]:
    """curl https://NAME:PORT/ trusting `ca` (only): ("CODE HTTP-VERSION", body)."""
    curl = shutil.which("curl")
    assert curl is not None
    process = await asyncio.create_subprocess_exec(
        *(curl, "-sS", "--cacert", str(ca.path), "--resolve", f"{name}:{port}:127.0.0.1"),
        *("-w", "\n%{http_code} %{http_version}", f"https://{name}:{port}/"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err
    body, _, status = out.decode().rpartition("\n")
    return status, body


async def test_curl_gets_the_certificate_for_its_name(env: Env, certs: Certs) -> None:
    b = await env.backend("b0")
    proxy = await tls_proxy(env, [b], certs.tls(certs.www, certs.api))
    for name in (WWW, "v1.api.example.test"):  # curl verifies the name: SNI picked the right one
        assert await curl_https(certs.ca, proxy.tls_port, name) == ("200 1.1", "b0")


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
    # A client that trusts another CA gives up (asyncio's drops the connection, no alert).
    with pytest.raises(ssl.SSLCertVerificationError):
        await tls_get(proxy.tls_port, client_context(certs.other_ca))
    _, gone = await asyncio.open_connection("127.0.0.1", proxy.tls_port)
    gone.close()  # connects, then leaves before saying anything
    reader, silent = await asyncio.open_connection("127.0.0.1", proxy.tls_port)
    assert await reader.read() == b""  # says nothing: cut after handshake_timeout
    silent.close()
    await wait_until(lambda: handshakes(proxy, "timeout") == 1)
    assert (handshakes(proxy, "error"), handshakes(proxy, "closed")) == (3, 2)
    failed = [r for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert len(failed) == 3  # one line per kind of failure, not one per connection
    # None of them kept a slot: max_connections=2 still takes two real clients.
    await wait_until(lambda: proxy.stats.client_connections == 0)
    first, second = await asyncio.gather(
        *(tls_get(proxy.tls_port, client_context(certs.ca)) for _ in range(2))
    )
    assert first.reply.status == second.reply.status == 200


# -- reloads -----------------------------------------------------------------------------------


async def test_a_reload_gives_new_connections_the_new_certificate_and_keeps_open_ones(
    env: Env, certs: Certs
) -> None:
    b = await env.backend("b0")
    spec = make_spec([b], tls=certs.tls(certs.www))
    proxy = await env.proxy(spec)
    context = client_context(certs.ca)
    reader, writer = await open_tls(proxy.tls_port, context)
    request = KEPT_GET
    writer.write(request)
    assert (await read_reply(reader)).status == 200
    shown = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    assert peer_serial(shown) == certs.www.serial

    renewed = certs.ca.issue("www", [WWW])  # the same files, rewritten: a renewal
    proxy.reload(spec)

    writer.write(request)  # the connection opened before the reload still answers
    assert (await read_reply(reader)).status == 200
    writer.close()
    fresh = await tls_get(proxy.tls_port, context)
    assert (fresh.serial, fresh.reply.status) == (renewed.serial, 200)
    (shown,) = proxy.status()["tls_certificates"]  # what an operator checks after a SIGHUP
    assert (shown["names"], shown["serial"]) == ([WWW], f"{renewed.serial:x}")


async def test_a_reload_with_a_broken_key_changes_nothing(env: Env, certs: Certs) -> None:
    b = await env.backend("b0")
    spec = make_spec([b], tls=certs.tls(certs.www))
    proxy = await env.proxy(spec)
    certs.www.key.write_text("not a key\n")  # broken after the config was read
    with pytest.raises(CertificateError):
        proxy.reload(replace(spec, method="least_conn"))
    assert proxy.status()["method"] == "round_robin"
    got = await tls_get(proxy.tls_port, client_context(certs.ca))
    assert (got.serial, got.reply.status) == (certs.www.serial, 200)


# -- https:// backends -------------------------------------------------------------------------


@dataclass
class HttpsBackend:
    backend: TestBackend
    server_names: list[str | None]  # the SNI of each handshake it saw

    def spec(self, ca: TestCA | None, host: str = "localhost", **kw: object) -> ProxySpec:
        """The proxy in front of it, reaching it as https://HOST:port, trusting `ca`."""
        b = self.backend
        url = f"https://{host}:{b.port}"  # localhost: a name the certificate holds
        target = Backend(b.name, url, host, b.port, ca=str(ca.path) if ca else None)
        return replace(make_spec([b], **kw), backends=(target,))


@pytest.fixture
async def https_backend(env: Env, certs: Certs) -> HttpsBackend:
    leaf = certs.ca.issue("localhost", ["localhost"])  # and IP 127.0.0.1
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(leaf.cert, leaf.key)
    names: list[str | None] = []

    def note(_: object, name: str | None, __: object) -> None:
        names.append(name)

    context.sni_callback = note
    return HttpsBackend(await env.backend("tb", ssl_context=context), names)


async def test_an_https_backend_is_verified_with_its_ca_and_gets_sni(
    env: Env, certs: Certs, https_backend: HttpsBackend
) -> None:
    proxy = await env.proxy(https_backend.spec(certs.ca))
    reply = await get(proxy.port, "/echo")
    assert (reply.status, reply.header("X-Backend")) == (200, "tb")
    assert forwarded_proto(reply) == ["http"]
    assert https_backend.server_names == ["localhost"]
    assert (await get(proxy.port)).status == 200  # the pooled connection is reused
    assert https_backend.server_names == ["localhost"]


async def test_an_https_backend_named_by_address_is_verified_by_its_ip_san(
    env: Env, certs: Certs, https_backend: HttpsBackend
) -> None:
    proxy = await env.proxy(https_backend.spec(certs.ca, host="127.0.0.1"))
    assert (await get(proxy.port)).status == 200
    assert https_backend.server_names == [None]  # no SNI for an address (RFC 6066 §3)


@pytest.mark.parametrize("trust", ["other CA", "system"])
async def test_an_https_backend_with_an_untrusted_certificate_gets_502(
    env: Env, certs: Certs, https_backend: HttpsBackend, trust: str
) -> None:
    ca = certs.other_ca if trust == "other CA" else None
    proxy = await env.proxy(https_backend.spec(ca))
    reply = await get(proxy.port)
    assert reply.status == 502
    assert https_backend.backend.hits == 0


@pytest.mark.parametrize(("trust", "healthy"), [("own CA", True), ("other CA", False)])
async def test_health_checks_of_an_https_backend_verify_it(
    env: Env, certs: Certs, https_backend: HttpsBackend, trust: str, healthy: bool
) -> None:
    ca = certs.ca if trust == "own CA" else certs.other_ca
    check = CheckSpec(kind="http", interval=0.1, timeout=0.1, rise=1, fall=1)
    proxy = await env.proxy(https_backend.spec(ca, health=check))

    def verdict() -> dict[str, object]:
        backend: dict[str, object] = proxy.status()["backends"][0]
        return backend

    await wait_until(lambda: verdict()["health_detail"] != "")
    assert verdict()["healthy"] is healthy
    detail = str(verdict()["health_detail"])
    assert detail == "HTTP 200" if healthy else detail.startswith("TLS certificate")


# -- the real process (uvloop): curl, SIGHUP -----------------------------------------------------


async def test_sighup_swaps_certificates_in_the_running_proxy(env: Env, tmp_path: Path) -> None:
    config = tmp_path / "config"
    ca = TestCA.make(config / "regions" / "tls")
    first = ca.issue("www", [WWW])
    # the files beside the region file (regions/tls/), as the config reference says
    tls = "  tls:\n    listen: 127.0.0.1:0\n"
    tls += "    certificates: [{cert: tls/www.pem, key: tls/www.key}]\n"
    write_region(config, [await env.backend("b0")], tls)
    async with run_proxy(config) as proxy, aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{proxy.admin_port}/status") as r:
            port = int((await r.json())["tls_listen"].rsplit(":", 1)[1])
        assert await curl_https(ca, port) == ("200 1.1", "b0")
        context = client_context(ca)
        reader, writer = await open_tls(port, context)
        request = KEPT_GET
        writer.write(request)
        assert (await read_reply(reader)).status == 200
        assert (await tls_get(port, context)).serial == first.serial

        renewed = ca.issue("www", [WWW])
        proxy.proc.send_signal(signal.SIGHUP)
        async with asyncio.timeout(10):  # the signal is handled asynchronously: ask until
            while (await tls_get(port, context)).serial != renewed.serial:
                await asyncio.sleep(0.02)
        writer.write(request)  # opened before the reload: still answered
        assert (await read_reply(reader)).status == 200
        writer.close()
        assert await curl_https(ca, port) == ("200 1.1", "b0")
        proxy.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proxy.proc.wait(), 10) == 0


def test_a_replaced_server_tls_is_freed_without_the_cycle_collector(certs: Certs) -> None:
    gc.disable()  # only reference counting: a reference cycle would keep it
    try:
        tls = ServerTls(certs.tls(certs.www, certs.api))
        gone = weakref.ref(tls.context)
        del tls
        assert gone() is None
    finally:
        gc.enable()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_reload_adds_moves_and_removes_the_tls_listener(env: Env, certs: Certs) -> None:
    b = await env.backend("b0")
    plain_only = make_spec([b])
    proxy = await env.proxy(plain_only)
    context = client_context(certs.ca)
    proxy.reload(replace(plain_only, tls=certs.tls(certs.www)))  # added
    first = proxy.tls_port
    assert first and proxy.status()["tls_listen"] == f"127.0.0.1:{first}"
    got = await tls_get(first, context)
    assert (got.serial, got.reply.status) == (certs.www.serial, 200)
    reader, writer = await open_tls(first, context)  # kept open through the move
    writer.write(KEPT_GET)
    assert (await read_reply(reader)).status == 200

    moved = certs.tls(certs.www, listen=HostPort("127.0.0.1", free_port()))
    proxy.reload(replace(plain_only, tls=moved))
    assert proxy.tls_port == moved.listen.port != first
    assert (await tls_get(proxy.tls_port, context)).reply.status == 200
    with pytest.raises(ConnectionRefusedError):
        await tls_get(first, context)
    writer.write(KEPT_GET)  # a connection the old listener let in goes on being served
    assert (await read_reply(reader)).status == 200

    proxy.reload(plain_only)  # removed
    assert proxy.tls_port == 0 and proxy.status()["tls_listen"] is None
    assert proxy.status()["tls_certificates"] == []
    with pytest.raises(ConnectionRefusedError):
        await tls_get(moved.listen.port, context)
    writer.write(KEPT_GET)
    assert (await read_reply(reader)).status == 200
    writer.close()
    assert (await get(proxy.port)).status == 200


async def test_a_reload_to_a_tls_address_in_use_is_refused_and_changes_nothing(
    env: Env, certs: Certs
) -> None:
    b, other = await env.backend("b0"), await env.backend("b1")
    proxy = await env.proxy(make_spec([b], tls=certs.tls(certs.www)))
    port = proxy.tls_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = certs.tls(certs.www, listen=HostPort("127.0.0.1", taken.getsockname()[1]))
        with pytest.raises(OSError):
            proxy.reload(make_spec([other], tls=busy))
    assert proxy.tls_port == port
    got = await tls_get(port, client_context(certs.ca))
    assert got.reply.status == 200 and got.reply.body.endswith(b"b0")  # the old backends


async def test_sessions_resume_across_a_reload_that_left_the_certificates_alone(
    env: Env, certs: Certs
) -> None:
    b, other = await env.backend("b0"), await env.backend("b1")
    spec = make_spec([b], tls=certs.tls(certs.www))
    proxy = await env.proxy(spec)
    context = client_context(certs.ca)
    _, session, _ = await asyncio.to_thread(blocking_get, proxy.tls_port, context, None)
    proxy.reload(make_spec([other], tls=certs.tls(certs.www)))  # new backends, same certificate
    reused, session, body = await asyncio.to_thread(blocking_get, proxy.tls_port, context, session)
    assert reused and body.endswith(b"b1")

    certs.ca.issue("www", [WWW])  # renewed: new contexts, new ticket keys
    proxy.reload(spec)
    reused, _, body = await asyncio.to_thread(blocking_get, proxy.tls_port, context, session)
    assert not reused and body.endswith(b"b0")


async def test_a_drain_closes_the_tls_listener_and_tls_connections_as_plain_ones(
    env: Env, certs: Certs
) -> None:
    b = await env.backend("b0")
    spec = make_spec([b], tls=certs.tls(certs.www), drain_grace=0.3, drain_close_spread=0.0)
    proxy = await env.proxy(spec)
    context = client_context(certs.ca)
    reader, writer = await open_tls(proxy.tls_port, context)
    request = KEPT_GET
    writer.write(request)
    assert (await read_reply(reader)).header("Connection") == "keep-alive"
    proxy.request_drain()
    await asyncio.sleep(0)  # the drain task runs: the listeners close
    assert proxy.draining
    with pytest.raises(ConnectionRefusedError):
        await tls_get(proxy.tls_port, context)
    writer.write(request)  # written on the idle TLS connection during the grace: answered
    reply = await read_reply(reader)
    assert (reply.status, reply.header("Connection")) == (200, "close")
    assert await reader.read() == b""
    writer.close()
    await asyncio.wait_for(proxy.finished.wait(), 3)


async def test_a_websocket_over_tls_is_tunnelled(env: Env, certs: Certs) -> None:
    wsb = await WsBackend().start()
    try:
        proxy = await tls_proxy(env, [wsb], certs.tls(certs.www))  # type: ignore[list-item]
        url = f"https://127.0.0.1:{proxy.tls_port}/ws"
        context = client_context(certs.ca)
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, ssl=context, server_hostname=WWW, max_msg_size=4 << 20) as ws,
        ):
            big = pattern(0, 1 << 20)  # over every buffer: flow control through TLS
            await ws.send_bytes(big)
            assert await ws.receive_bytes(timeout=5) == big
        assert wsb.headers["X-Forwarded-Proto"] == "https"
    finally:
        await wsb.stop()


async def test_client_initiated_renegotiation_is_refused(env: Env, certs: Certs) -> None:
    """A TLS 1.2 client asking to renegotiate (a CPU lever for a client: one handshake after
    another on one connection) gets the no_renegotiation alert (openssl s_client's "R")."""
    openssl = shutil.which("openssl")
    assert openssl is not None
    proxy = await tls_proxy(env, [await env.backend("b0")], certs.tls(certs.www))
    process = await asyncio.create_subprocess_exec(
        *(openssl, "s_client", "-connect", f"127.0.0.1:{proxy.tls_port}", "-tls1_2"),
        *("-CAfile", str(certs.ca.path), "-servername", WWW),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdin is not None and process.stdout is not None
    async with asyncio.timeout(10):
        seen = b""
        while b"Verify return code: 0" not in seen:  # the handshake is done
            seen += await process.stdout.read(4096)
        process.stdin.write(b"R\n")
        out = seen + await process.stdout.read()  # s_client ends when the proxy refuses
        await process.wait()
    assert b"RENEGOTIATING" in out and b"no renegotiation" in out
    assert (await tls_get(proxy.tls_port, client_context(certs.ca))).reply.status == 200


async def test_a_tls_connection_queued_when_the_drain_starts_is_served(
    env: Env, certs: Certs
) -> None:
    tls = certs.tls(certs.www)
    proxy = await tls_proxy(env, [await env.backend("b0")], tls, max_connections=1)
    reader, slow = await asyncio.open_connection("127.0.0.1", proxy.port)
    slow.write(b"GET / HTTP/1.1\r\nHost: t\r\n")  # holds the one slot, half a head
    await wait_until(lambda: not proxy.accepting)
    # A TLS client waits in the TLS socket's backlog, its ClientHello sent.
    waiting = asyncio.ensure_future(tls_get(proxy.tls_port, client_context(certs.ca)))
    done, _ = await asyncio.wait([waiting], timeout=0.3)
    assert not done
    drained = asyncio.ensure_future(proxy.drain())
    got = await asyncio.wait_for(waiting, 5)  # accepted as the listener closed, and served
    assert (got.reply.status, got.serial) == (200, certs.www.serial)
    slow.write(b"\r\n")
    assert (await asyncio.wait_for(read_reply(reader), 5)).status == 200
    assert await asyncio.wait_for(drained, 10)  # every connection closed cleanly
    slow.close()


def _request_and_go_silent(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    """A request with `Connection: close`, its reply read, and then nothing: the client never
    answers the proxy's close_notify, nor closes (the socket is returned, held open)."""
    sock = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=WWW
    )
    sock.sendall(f"GET / HTTP/1.1\r\nHost: {WWW}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200")
    return sock


async def test_a_client_that_never_answers_close_notify_holds_its_slot_only_briefly(
    env: Env, certs: Certs
) -> None:
    """After the proxy closes a TLS connection it waits for the client's close_notify at most
    `shutdown_timeout` (asyncio's default is 30 s: that long per silent client, a slot of
    max_connections and a descriptor each)."""
    proxy = await tls_proxy(
        env, [await env.backend("b0")], certs.tls(certs.www, shutdown_timeout=0.5)
    )
    shared = proxy._shared
    assert shared is not None
    silent = [
        await asyncio.to_thread(_request_and_go_silent, proxy.tls_port, client_context(certs.ca))
        for _ in range(3)
    ]
    try:
        await asyncio.wait_for(shared.wait_all_closed(), 5)
        assert not shared.connections
    finally:
        for sock in silent:
            sock.close()
