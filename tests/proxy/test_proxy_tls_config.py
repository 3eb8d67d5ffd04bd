"""`proxy.tls:` and https:// backends in the region file: parsed into the spec, bad values
and bad files refused as `file:line: message`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from tlshelpers import TestCA

from gslb.config import load_config
from gslb.errors import ConfigError, Problem
from gslb.model import HostPort, ProxySpec, ProxyTlsSpec, TlsCertificate

ZONE = "{zone: example.com, ns: [ns1.example.com], records: {ns1: {A: 192.0.2.1}},"
ZONE += " services: {www: {regions: [east]}}}\n"
EAST = """\
region: east
services:
  www.example.com: [192.0.2.10]
proxy:
  listen: 127.0.0.1:8080
"""


def write(directory: Path, proxy_rest: str) -> Path:
    (directory / "regions").mkdir(parents=True, exist_ok=True)
    (directory / "example.com.yaml").write_text(ZONE)
    rest = textwrap.indent(textwrap.dedent(proxy_rest), "  ")
    (directory / "regions" / "east.yaml").write_text(EAST + rest)
    return directory


def proxy_of(directory: Path) -> ProxySpec:
    spec = load_config(str(directory)).regions["east"].proxy
    assert spec is not None
    return spec


def problems(directory: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load_config(str(directory))
    return list(caught.value.problems)


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA.make(tmp_path / "cfg" / "regions" / "tls")


def test_tls_block_is_parsed_with_paths_beside_the_region_file(tmp_path: Path, ca: TestCA) -> None:
    ca.issue("www", ["www.example.test"])
    ca.issue("api", ["*.api.example.test"])
    directory = write(
        tmp_path / "cfg",
        """\
          tls:
            listen: 127.0.0.1:8443
            certificates:
              - {cert: tls/www.pem, key: tls/www.key}
              - {cert: tls/api.pem, key: tls/api.key}
            min_version: "1.3"
            handshake_timeout: 3s
            shutdown_timeout: 500ms
          backends:
            - {name: a, url: http://127.0.0.1:8000}
        """,
    )
    here = tmp_path / "cfg" / "regions" / "tls"
    assert proxy_of(directory).tls == ProxyTlsSpec(
        listen=HostPort("127.0.0.1", 8443),
        certificates=(
            TlsCertificate(str(here / "www.pem"), str(here / "www.key")),
            TlsCertificate(str(here / "api.pem"), str(here / "api.key")),
        ),
        min_version="1.3",
        handshake_timeout=3.0,
        shutdown_timeout=0.5,
    )


def test_defaults_and_no_tls(tmp_path: Path, ca: TestCA) -> None:
    ca.issue("www", ["www.example.test"])
    directory = write(
        tmp_path / "cfg",
        """\
          tls:
            listen: 127.0.0.1:8443
            certificates: [{cert: tls/www.pem, key: tls/www.key}]
          backends: [{name: a, url: http://127.0.0.1:8000}]
        """,
    )
    tls = proxy_of(directory).tls
    assert tls is not None
    assert (tls.min_version, tls.handshake_timeout, tls.shutdown_timeout) == ("1.2", 10.0, 5.0)
    plain = write(tmp_path / "plain", "backends: [{name: a, url: http://127.0.0.1:8000}]\n")
    assert proxy_of(plain).tls is None


def test_https_backends_get_their_ca_or_the_proxys(tmp_path: Path, ca: TestCA) -> None:
    other = TestCA.make(tmp_path / "cfg" / "regions" / "other", "other CA")
    directory = write(
        tmp_path / "cfg",
        f"""\
          ca: tls/{ca.path.name}
          backends:
            - {{name: a, url: "https://app.example.test:8443"}}
            - {{name: b, url: "https://127.0.0.1", ca: other/{other.path.name}}}
            - {{name: c, url: "http://127.0.0.1:8000"}}
        """,
    )
    a, b, c = proxy_of(directory).backends
    assert (a.url, a.host, a.port, a.https, a.ca) == (
        "https://app.example.test:8443",
        "app.example.test",
        8443,
        True,
        str(ca.path),
    )
    assert (b.url, b.port, b.ca) == ("https://127.0.0.1:443", 443, str(other.path))
    assert (c.https, c.ca) == (False, None)


BAD = [
    (
        "min_version not a choice",
        """\
          tls:
            listen: 127.0.0.1:8443
            certificates: [{cert: tls/www.pem, key: tls/www.key}]
            min_version: "1.1"
        """,
        9,
        "'1.1' is not one of: 1.2, 1.3",
    ),
    (
        "no certificates",
        """\
          tls: {listen: 127.0.0.1:8443, certificates: []}
        """,
        6,
        "needs at least 1 item",
    ),
    (
        "missing cert file",
        """\
          tls:
            listen: 127.0.0.1:8443
            certificates:
              - {cert: tls/none.pem, key: tls/www.key}
        """,
        9,
        "no such file",
    ),
    (
        "key of another certificate",
        """\
          tls:
            listen: 127.0.0.1:8443
            certificates:
              - {cert: tls/www.pem, key: tls/api.key}
        """,
        9,
        "does not match the certificate",
    ),
    (
        "not a certificate",
        """\
          tls:
            listen: 127.0.0.1:8443
            certificates:
              - {cert: tls/www.key, key: tls/www.key}
        """,
        9,
        "holds no PEM certificate",
    ),
    (
        "bad handshake timeout",
        """\
          tls:
            listen: 127.0.0.1:8443
            certificates: [{cert: tls/www.pem, key: tls/www.key}]
            handshake_timeout: 0s
        """,
        9,
        "duration out of range: 0s",
    ),
    (
        "tls on the plain port",
        """\
          tls:
            listen: 127.0.0.1:8080
            certificates: [{cert: tls/www.pem, key: tls/www.key}]
        """,
        7,
        "tls listens on 127.0.0.1:8080, as listen does",
    ),
    ("ca not a CA file", "ca: tls/www.key\n", 6, "holds no usable CA certificate"),
    ("ca missing", "ca: tls/nothing.pem\n", 6, "no such file"),
    (
        "ca on a plain backend",
        "backends: [{name: b, url: 'http://127.0.0.1:1', ca: tls/www.pem}]\n",
        6,
        "only an https:// backend is verified",
    ),
    (
        "another scheme",
        "backends: [{name: b, url: 'ftp://127.0.0.1:21'}]\n",
        6,
        "only http:// and https:// URLs are supported",
    ),
]


@pytest.mark.parametrize(("case", "rest", "line", "message"), BAD, ids=[c[0] for c in BAD])
def test_bad_tls_config_is_refused_at_its_line(
    tmp_path: Path, ca: TestCA, case: str, rest: str, line: int, message: str
) -> None:
    ca.issue("www", ["www.example.test"])
    ca.issue("api", ["api.example.test"])
    backends = "" if "backends" in rest else "backends: [{name: a, url: http://127.0.0.1:1}]\n"
    directory = write(tmp_path / "cfg", textwrap.dedent(rest) + backends)
    found = problems(directory)
    assert any(p.line == line and message in p.message for p in found), found
    assert all(p.file.endswith("regions/east.yaml") for p in found), found
