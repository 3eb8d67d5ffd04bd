"""Reading TLS files: a certificate with its key, and a CA bundle, checked as OpenSSL will load
them, with the DNS names a certificate is valid for.

The config loader calls these to refuse a bad file at load time (`file:line: message`); the
proxy calls them again when it builds its contexts, so both see the same verdict.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from gslb.errors import GslbError


class CertificateError(GslbError):
    """A certificate, key or CA file that cannot be used; the message says why."""


def _no_passphrase() -> str:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    raise CertificateError("the key is encrypted (a passphrase is not supported)")


def _cannot_read(path: str, error: OSError) -> CertificateError:
    if isinstance(error, FileNotFoundError):
        why = "no such file"
    elif isinstance(error, PermissionError):
        why = "permission denied"
    else:
        why = error.strerror or str(error)
    return CertificateError(f"cannot read {error.filename or path}: {why}")


def load_pair(context: ssl.SSLContext, cert: str, key: str) -> None:
    """Load `cert` and `key` into `context`; CertificateError when unreadable or mismatched."""
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except CertificateError as e:
        raise CertificateError(f"{key}: {e}") from None
    except ssl.SSLError as e:
        reason = (e.reason or "").lower().replace("_", " ")
        if "mismatch" in reason:
            raise CertificateError(f"the key {key} does not match the certificate {cert}") from None
        raise CertificateError(f"{key} holds no usable key for {cert} ({reason or e})") from None
    except OSError as e:
        raise _cannot_read(cert, e) from None


def read_file(path: str) -> bytes:
    """The bytes of a certificate, key or CA file; CertificateError when unreadable."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise _cannot_read(path, e) from None


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What the proxy shows of a certificate (GET /status) and matches SNI against."""

    names: tuple[str, ...]  # see certificate_names
    not_after: datetime.datetime  # UTC
    serial: int


def read_certificate(cert: str) -> CertificateInfo:
    """The first certificate in the PEM file `cert`."""
    pem = read_file(cert)
    try:
        parsed = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise CertificateError(f"{cert} holds no PEM certificate") from None
    return CertificateInfo(
        certificate_names(parsed), parsed.not_valid_after_utc, parsed.serial_number
    )


def certificate_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names `cert` covers: its SAN dNSName entries, or else its CN (as clients did
    before RFC 6125); lower case, no trailing dot, each once; `*.x` for a wildcard."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns = []
    if not dns:  # RFC 6125 §6.4.4: the CN only counts when there is no dNSName
        dns = [str(attr.value) for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    out: list[str] = []
    for name in dns:
        name = name.strip().rstrip(".").lower()
        if name and name not in out:
            out.append(name)
    return tuple(out)


def check_pair(cert: str, key: str) -> CertificateInfo:
    """What the proxy will do with the pair, done once: names read, key loaded and matched."""
    info = read_certificate(cert)
    load_pair(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), cert, key)
    return info


def load_ca(context: ssl.SSLContext, ca: str) -> None:
    """Trust the certificates of the PEM file `ca` in `context`; CertificateError if unusable."""
    try:
        context.load_verify_locations(cafile=ca)
    except ssl.SSLError:
        raise CertificateError(f"{ca} holds no usable CA certificate") from None
    except OSError as e:
        raise _cannot_read(ca, e) from None


def check_ca(ca: str) -> None:
    """What the proxy will do with a CA file, done once (a bare context: no system store)."""
    load_ca(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), ca)
