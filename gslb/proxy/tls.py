"""The proxy's TLS, built once per load: the server side of the HTTPS listener and the client
side towards https:// backends.

`server_tls(spec)`: a `ServerTls`, one `ssl.SSLContext` per certificate. The first one's is
handed to the listener; its servername callback switches a handshake to the context the SNI
table picks (`gslb.proxy.sni`). Each context offers ALPN `http/1.1` and refuses versions
below `min_version`. Session resumption stays as OpenSSL does it by default: TLS 1.3 tickets
(and TLS 1.2 tickets and session ids), kept in, and encrypted with keys of, the first
context, so they survive the switch. A reload that changed the TLS block or its files builds
a new `ServerTls`: connections already open keep theirs, new ones get the new certificates
(and a full handshake: the ticket keys are new); any other reload keeps the one there is.

`BackendTls`: one verifying client context per CA file (or the system's trust store), shared
by the backends naming it; a context is kept across reloads while its CA file's bytes stay the
same, so that the health checks of the backends using it are not restarted.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Callable, Iterable, Mapping

from gslb.certificates import (
    CertificateError,
    CertificateInfo,
    load_pair,
    read_certificate,
    read_file,
)
from gslb.model import Backend, ProxyTlsSpec, frozen_map
from gslb.proxy.sni import SniTable

ALPN = ["http/1.1"]
SniCallback = Callable[[ssl.SSLObject | ssl.SSLSocket, str | None, ssl.SSLContext], None]
MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def server_tls(spec: ProxyTlsSpec, current: ServerTls | None = None) -> ServerTls:
    """The ServerTls for `spec`: `current` itself when it was built from the same spec and the
    same file contents (its session cache and ticket keys live on, so clients resume across a
    reload that changed something else), else a new one. Raises CertificateError."""
    digest = _digest(spec)
    if current is not None and current.digest == digest:
        return current
    return ServerTls(spec, digest)


def _digest(spec: ProxyTlsSpec) -> bytes:
    h = hashlib.blake2b(repr(spec).encode(), digest_size=16)
    for certificate in spec.certificates:
        h.update(read_file(certificate.cert))
        h.update(read_file(certificate.key))
    return h.digest()


class ServerTls:
    """The certificates of one load; `context` is what the TLS listener wraps connections in."""

    __slots__ = ("certificates", "context", "digest", "handshake_timeout", "shutdown_timeout")

    def __init__(self, spec: ProxyTlsSpec, digest: bytes = b"") -> None:
        """Raises CertificateError when a file became unusable since the config was read.
        `digest`: what server_tls() compares to tell whether a reload changed anything."""
        self.digest = digest
        infos: list[CertificateInfo] = []
        contexts: list[ssl.SSLContext] = []
        for certificate in spec.certificates:
            infos.append(read_certificate(certificate.cert))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = MIN_VERSIONS[spec.min_version]
            context.set_alpn_protocols(ALPN)
            load_pair(context, certificate.cert, certificate.key)
            contexts.append(context)
        self.certificates: tuple[CertificateInfo, ...] = tuple(infos)  # in configured order
        self.context = contexts[0]
        table = SniTable.build([info.names for info in infos])
        self.context.sni_callback = _switcher(table, tuple(contexts[1:]))
        self.handshake_timeout = spec.handshake_timeout
        self.shutdown_timeout = spec.shutdown_timeout


def _switcher(table: SniTable, others: tuple[ssl.SSLContext, ...]) -> SniCallback:
    """The servername callback of the default context: moves a handshake to certificate i's
    context (others[i - 1]). It holds no reference to the default context itself, so that a
    replaced ServerTls is freed by reference counting, with no cycle for the collector."""

    def on_server_name(
        conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        index = table.choose(server_name)
        if index:
            conn.context = others[index - 1]

    return on_server_name


class BackendTls:
    """Verifying client contexts for https:// backends, by CA file (None: the system's)."""

    __slots__ = ("_by_ca",)

    def __init__(self, backends: Iterable[Backend], previous: BackendTls | None = None) -> None:
        """Raises CertificateError when a CA file became unusable since the config was read."""
        # The previous load's contexts stay reachable: a request that began before the reload
        # may still connect to a backend the new config dropped, with the CA it named.
        kept = previous._by_ca if previous is not None else {}
        by_ca: dict[str | None, tuple[bytes, ssl.SSLContext]] = dict(kept)
        done: set[str | None] = set()
        for backend in backends:
            if not backend.https or backend.ca in done:
                continue
            done.add(backend.ca)
            digest, cadata = _read_ca(backend.ca)
            old = kept.get(backend.ca)
            if old is None or old[0] != digest:
                by_ca[backend.ca] = (digest, _client_context(cadata))
        self._by_ca: Mapping[str | None, tuple[bytes, ssl.SSLContext]] = frozen_map(by_ca)

    def context(self, backend: Backend) -> ssl.SSLContext | None:
        """The context to reach `backend` with; None for a plain http:// one."""
        if not backend.https:
            return None
        return self._by_ca[backend.ca][1]


def _read_ca(ca: str | None) -> tuple[bytes, str | None]:
    """The CA file's digest and text; for the system's trust store (None) nothing to read."""
    if ca is None:
        return b"", None
    data = read_file(ca)
    return hashlib.blake2b(data, digest_size=16).digest(), data.decode("ascii", "replace")


def _client_context(cadata: str | None) -> ssl.SSLContext:
    """Verification on: the chain up to the given CAs (only them) and the backend's host name."""
    if cadata is None:
        context = ssl.create_default_context()
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, checks the host name
        try:
            context.load_verify_locations(cadata=cadata)
        except ssl.SSLError:
            raise CertificateError("the CA file holds no usable CA certificate") from None
    context.set_alpn_protocols(ALPN)
    return context


# OpenSSL's reasons for "no version both sides speak" (min_version refused the client's).
_VERSION_REASONS = frozenset(
    {
        "UNSUPPORTED_PROTOCOL",
        "VERSION_TOO_LOW",
        "NO_PROTOCOLS_AVAILABLE",
        "TLSV1_ALERT_PROTOCOL_VERSION",
    }
)


def handshake_failure(error: BaseException) -> str:
    """What a failed server-side handshake's exception says, as the metric's `result`:
    version (no common TLS version), closed (the client went away), error (anything else:
    no common cipher, a bad record, plain HTTP on the TLS port, an alert from the client)."""
    if isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return "closed"
    if isinstance(error, ssl.SSLError):
        return "version" if error.reason in _VERSION_REASONS else "error"
    if isinstance(error, ConnectionError | EOFError):
        return "closed"
    return "error"
