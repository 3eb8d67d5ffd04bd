"""One health probe: an HTTP(S) GET or a TCP connect, bounded by the check's timeout.

Public API (stable; used by the DNS server's scheduler and by the proxy):

    ProbeResult(ok, detail, latency)      frozen value: what one probe found
    Prober(*, limit=256, ssl_context=None, clock=time.monotonic)
        async with Prober() as prober:    opens the shared aiohttp ClientSession; closes it on exit
            result = await prober.probe(spec, host, port=None)

`probe` never raises for anything the network or the target does: every failure is a
`ProbeResult(ok=False, detail=...)`, with a detail such as "HTTP 503", "timeout after 2s",
"connection refused" or "TLS certificate: ...". (Cancellation still propagates, and calling it
on a Prober that is not open is a programming error: RuntimeError.)

Kinds (`spec.kind`, see `gslb.model.CheckSpec`):
- http:  GET `spec.path` on host:port (port = the argument, else `spec.port_or_default()`), with
         Host = `spec.host` or the address; healthy iff the status is `spec.expect`. Redirects
         are not followed and the body is not read.
- https: the same over TLS; the certificate is verified unless `spec.verify_tls` is false, and
         SNI (and the name checked against the certificate) is `spec.host` when given, else the
         address. `ssl_context` replaces the system trust store (for a private CA).
- tcp:   a connection to host:port is accepted in time.

Every probe uses a fresh connection (the connector has `force_close`), so a server that died
since the last probe cannot hide behind a pooled keep-alive connection. `limit` caps the
connections open at once over all probes. `latency` is seconds from the start of the probe to
its result, by `clock`. IPv6 addresses are given bare ("2001:db8::1"), without brackets.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import aiohttp
from yarl import URL

from gslb.model import CheckSpec

USER_AGENT = "gslb-health/0.1"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe found."""

    ok: bool
    detail: str  # "HTTP 200", "HTTP 503", "timeout after 2s", "connection refused", ...
    latency: float  # seconds from the start of the probe to its result


class Prober:
    """Runs probes; owns the resources they share (one ClientSession, its connector)."""

    def __init__(
        self,
        *,
        limit: int = 256,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._ssl_context = ssl_context
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Prober:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the shared session (needs a running event loop); a no-op when already open."""
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            force_close=True,  # a fresh connection per probe: a dead server is noticed
            limit=self._limit,
            ttl_dns_cache=10,  # for targets named by host name rather than address
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # The whole probe is bounded by asyncio.timeout(spec.timeout) instead, which also
            # covers the TLS handshake; no per-request timer objects from aiohttp.
            timeout=aiohttp.ClientTimeout(total=None),
            headers={"User-Agent": USER_AGENT, "Connection": "close"},
            skip_auto_headers=("Accept-Encoding",),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        """Close the session and its connections; the Prober can be opened again later."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def probe(
        self,
        spec: CheckSpec,
        host: str,
        port: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> ProbeResult:
        """Probe `host` (an address, or a name) once as `spec` says; never raises for a failure.
        `ssl_context` replaces the prober's for this probe (an https check)."""
        if self._session is None:
            raise RuntimeError("Prober.probe() called before open() / async with")
        port = spec.port_or_default() if port is None else port
        started = self._clock()
        try:
            async with asyncio.timeout(spec.timeout):
                if spec.kind == "tcp":
                    ok, detail = await _tcp(host, port)
                else:
                    context = ssl_context or self._ssl_context
                    ok, detail = await self._http(self._session, spec, host, port, context)
        except TimeoutError:
            ok, detail = False, f"timeout after {spec.timeout:g}s"
        except Exception as exc:  # a probe reports; it must not take the scheduler down
            ok, detail = False, describe_error(exc)
        return ProbeResult(ok, detail, self._clock() - started)

    async def _http(
        self,
        session: aiohttp.ClientSession,
        spec: CheckSpec,
        host: str,
        port: int,
        context: ssl.SSLContext | None,
    ) -> tuple[bool, str]:
        tls = spec.kind == "https"
        ssl_arg: ssl.SSLContext | bool = True
        if tls and not spec.verify_tls:
            ssl_arg = False
        elif tls and context is not None:
            ssl_arg = context
        async with session.get(
            check_url(spec, host, port),
            headers={"Host": spec.host} if spec.host else None,
            allow_redirects=False,
            ssl=ssl_arg,
            server_hostname=spec.host if tls and spec.host else None,
        ) as response:
            status = response.status
        return status == spec.expect, f"HTTP {status}"


async def _tcp(host: str, port: int) -> tuple[bool, str]:
    _, writer = await asyncio.open_connection(host, port)
    writer.close()  # no wait_closed(): the connect is the answer, the close is housekeeping
    return True, "connected"


def check_url(spec: CheckSpec, host: str, port: int) -> URL:
    """The URL an http(s) check requests: brackets around IPv6 addresses, the path's query kept."""
    path, _, query = spec.path.partition("?")
    return URL.build(
        scheme="https" if spec.kind == "https" else "http",
        host=host,
        port=port,
        path=path if path.startswith("/") else "/" + path,
        query_string=query,
        encoded=False,
    )


def describe_error(exc: BaseException) -> str:
    """A short, operator-readable reason for a failed probe."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate: {_reason(exc.certificate_error)}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError | ssl.SSLError):
        return f"TLS error: {_reason(exc)}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"name lookup failed: {exc.os_error.strerror or exc.os_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _os_error(exc.os_error)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection without a response"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"bad HTTP response: {exc.message}"
    if isinstance(exc, OSError):
        return _os_error(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _os_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if exc.strerror:
        return f"connect failed: {exc.strerror.lower()}"
    return f"connect failed: {exc}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return str(exc.verify_message)
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    return str(exc) or type(exc).__name__
