"""Scalar value kinds: numbers, durations, names, addresses, host:port, paths, URLs.

Each is a frozen, declarative `Kind` (see `gslb.config.kinds`) used in the
tables of `gslb.config.schema`. `parse_host_port` is shared with the command
line, which takes the same host:port spelling.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gslb.config import names
from gslb.config.kinds import INVALID, Ctx, JsonSchema, Kind, suggest
from gslb.config.yamlmarks import YNode
from gslb.model import HostPort

_DECIMAL = re.compile(r"^[-+]?[0-9]+$")
_NUMBER = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")


@dataclass(frozen=True, slots=True)
class Int(Kind):
    lo: int
    hi: int
    label: str = "value"

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        scalar = self.scalar(node, ctx)
        if scalar is None:
            return INVALID
        # Plain digits are read as decimal even with a leading zero (YAML 1.1 says octal).
        if scalar.plain and _DECIMAL.match(scalar.text):
            number = int(scalar.text, 10)
        elif isinstance(scalar.value, int) and not isinstance(scalar.value, bool):
            number = scalar.value
        else:
            return self.mismatch(node, ctx)
        if not self.lo <= number <= self.hi:
            ctx.report.add(
                node.line, f"{self.label} out of range: {number} (allowed {self.lo}..{self.hi})"
            )
            return INVALID
        return number

    def describe(self) -> str:
        return f"an integer {self.lo}..{self.hi}"

    def schema(self) -> JsonSchema:
        return {"type": "integer", "minimum": self.lo, "maximum": self.hi}


@dataclass(frozen=True, slots=True)
class Number(Kind):
    lo: float
    hi: float
    label: str = "value"

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        scalar = self.scalar(node, ctx)
        if scalar is None:
            return INVALID
        value = scalar.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self.mismatch(node, ctx)
        number = float(value)
        if not math.isfinite(number) or not self.lo <= number <= self.hi:
            ctx.report.add(
                node.line,
                f"{self.label} out of range: {scalar.text} (allowed {self.lo}..{self.hi})",
            )
            return INVALID
        return number

    def describe(self) -> str:
        return f"a number {self.lo}..{self.hi}"

    def schema(self) -> JsonSchema:
        return {"type": "number", "minimum": self.lo, "maximum": self.hi}


_PERCENT = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*%$")


@dataclass(frozen=True, slots=True)
class Percent(Kind):
    """A share written as "50%" (or a plain number of percent); parsed to a fraction 0..1."""

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        scalar = self.scalar(node, ctx)
        if scalar is None:
            return INVALID
        text = scalar.text.strip()
        match = _PERCENT.match(text)
        if match is None and not _NUMBER.match(text):
            ctx.report.add(node.line, f"bad percentage {scalar.text!r} (write e.g. 50%)")
            return INVALID
        number = float(match.group(1) if match else text)
        if not 0.0 <= number <= 100.0:
            ctx.report.add(node.line, f"percentage out of range: {scalar.text} (allowed 0%..100%)")
            return INVALID
        return number / 100.0

    def describe(self) -> str:
        return "a percentage 0%..100%"

    def schema(self) -> JsonSchema:
        return {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": 100},
                {"type": "string", "pattern": r"^[0-9]+(?:\.[0-9]+)?\s*%$"},
            ]
        }


@dataclass(frozen=True, slots=True)
class Bool(Kind):
    def parse(self, node: YNode, ctx: Ctx) -> Any:
        scalar = self.scalar(node, ctx)
        if scalar is None or not isinstance(scalar.value, bool):
            return INVALID if scalar is None else self.mismatch(node, ctx)
        return scalar.value

    def describe(self) -> str:
        return "true or false"

    def schema(self) -> JsonSchema:
        return {"type": "boolean"}


@dataclass(frozen=True, slots=True)
class Text(Kind):
    """Any scalar, taken as the text written (so `NO` stays "NO", not False)."""

    pattern: str | None = None
    what: str = "a string"
    max_len: int = 4096

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        scalar = self.scalar(node, ctx)
        if scalar is None:
            return INVALID
        text = scalar.text
        if len(text) > self.max_len:
            ctx.report.add(node.line, f"longer than {self.max_len} characters")
            return INVALID
        if self.pattern is not None and not re.fullmatch(self.pattern, text):
            ctx.report.add(node.line, f"{text!r} is not {self.what}")
            return INVALID
        return text

    def describe(self) -> str:
        return self.what

    def schema(self) -> JsonSchema:
        out: JsonSchema = {"type": "string", "maxLength": self.max_len}
        if self.pattern is not None:
            out["pattern"] = f"^(?:{self.pattern})$"
        return out


@dataclass(frozen=True, slots=True)
class Choice(Kind):
    choices: tuple[str, ...]
    upper: bool = False  # accept any case, store upper case

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        scalar = self.scalar(node, ctx)
        if scalar is None:
            return INVALID
        text = scalar.text.upper() if self.upper else scalar.text
        if text in self.choices:
            return text
        ctx.report.add(
            node.line,
            f"{scalar.text!r} is not one of: {', '.join(self.choices)}"
            + suggest(scalar.text, self.choices),
        )
        return INVALID

    def describe(self) -> str:
        return "one of " + ", ".join(self.choices)

    def schema(self) -> JsonSchema:
        if self.upper:
            return {"enum": [*self.choices, *(c.lower() for c in self.choices)]}
        return {"enum": list(self.choices)}


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_PATTERN = r"[0-9]+(?:\.[0-9]+)?|(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h))+"


@dataclass(frozen=True, slots=True)
class Duration(Kind):
    """Seconds as a number, or text such as "500ms", "10s", "2m", "1h", "1m30s"."""

    lo: float = 0.0
    hi: float = 7 * 86400.0
    positive: bool = False  # lo itself is excluded

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        scalar = self.scalar(node, ctx)
        if scalar is None:
            return INVALID
        text = scalar.text.strip()
        if _NUMBER.match(text):
            seconds = float(text)
        elif re.fullmatch(f"(?:{_DURATION_PART.pattern})+", text):
            seconds = sum(
                float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text)
            )
        else:
            ctx.report.add(
                node.line, f"bad duration {scalar.text!r} (write seconds, or e.g. 500ms, 10s, 2m)"
            )
            return INVALID
        too_low = seconds <= self.lo if self.positive else seconds < self.lo
        if too_low or seconds > self.hi:
            bound = f"more than {self.lo:g}s" if self.positive else f"at least {self.lo:g}s"
            ctx.report.add(
                node.line,
                f"duration out of range: {scalar.text} (must be {bound} and at most {self.hi:g}s)",
            )
            return INVALID
        return seconds

    def describe(self) -> str:
        return "a duration (seconds, or e.g. 500ms, 10s, 2m)"

    def schema(self) -> JsonSchema:
        number: JsonSchema = {"type": "number", "maximum": self.hi}
        number["exclusiveMinimum" if self.positive else "minimum"] = self.lo
        return {"anyOf": [number, {"type": "string", "pattern": f"^(?:{DURATION_PATTERN})$"}]}


def _bad(node: YNode, ctx: Ctx, message: str) -> Any:
    """Report `message` at the node's line; the value is INVALID."""
    ctx.report.add(node.line, message)
    return INVALID


_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$")
_UNIT_BYTES = {
    None: 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
}
SIZE_PATTERN = r"^[0-9]+(?:\.[0-9]+)?\s*(?:B|KB|MB|GB|KiB|MiB|GiB)?$"


@dataclass(frozen=True, slots=True)
class Size(Kind):
    """Bytes as an integer, or text such as "256MB" (10^6) or "64MiB" (2^20)."""

    lo: int
    hi: int

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        scalar = self.scalar(node, ctx)
        if scalar is None:
            return INVALID
        match = _SIZE.match(scalar.text.strip())
        if match is None or isinstance(scalar.value, bool):
            return _bad(node, ctx, f"bad size {scalar.text!r} (write bytes, or e.g. 256MB, 64MiB)")
        number = int(float(match.group(1)) * _UNIT_BYTES[match.group(2)])
        if self.lo <= number <= self.hi:
            return number
        return _bad(
            node, ctx, f"size out of range: {scalar.text} (allowed {self.lo:,}..{self.hi:,} bytes)"
        )

    def describe(self) -> str:
        return "a size (bytes, or e.g. 256MB, 64MiB)"

    def schema(self) -> JsonSchema:
        return {
            "anyOf": [
                {"type": "integer", "minimum": self.lo, "maximum": self.hi},
                {"type": "string", "pattern": SIZE_PATTERN},
            ]
        }


@dataclass(frozen=True, slots=True)
class Address(Kind):
    """An IPv4 or IPv6 address, stored in ipaddress's canonical text form."""

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        scalar = self.scalar(node, ctx)
        if scalar is None:
            return INVALID
        try:
            return str(ipaddress.ip_address(scalar.text.strip()))
        except ValueError:
            ctx.report.add(node.line, f"bad address {scalar.text!r} (not an IPv4 or IPv6 address)")
            return INVALID

    def describe(self) -> str:
        return "an IP address"

    def schema(self) -> JsonSchema:
        return {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}


@dataclass(frozen=True, slots=True)
class NetworkKind(Kind):
    """An IPv4 or IPv6 network in CIDR form (host bits must be clear)."""

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        scalar = self.scalar(node, ctx)
        if scalar is None:
            return INVALID
        try:
            return ipaddress.ip_network(scalar.text.strip())
        except ValueError as exc:
            ctx.report.add(node.line, f"bad network {scalar.text!r}: {exc}")
            return INVALID

    def describe(self) -> str:
        return "a network like 192.0.2.0/24 or 2001:db8::/32"

    def schema(self) -> JsonSchema:
        return {"type": "string", "pattern": "^[0-9A-Fa-f:.]+/[0-9]{1,3}$"}


_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


def parse_host_port(text: str, min_port: int = 1) -> HostPort:
    """ "host:port" or "[v6]:port" → HostPort; ValueError with a message otherwise."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"bad address {text!r} (write [v6-address]:port)")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"bad IPv6 address {host!r} in {text!r}") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"bad address {text!r} (write host:port)")
        if ":" in host:
            raise ValueError(f"bad address {text!r} (write IPv6 as [address]:port)")
        if not _HOSTNAME.match(host):
            raise ValueError(f"bad host {host!r} in {text!r}")
    if not port_text.isdigit() or not min_port <= int(port_text) <= 65535:
        raise ValueError(f"bad port {port_text!r} in {text!r} (allowed {min_port}..65535)")
    return HostPort(host.lower(), int(port_text))


@dataclass(frozen=True, slots=True)
class HostPortKind(Kind):
    min_port: int = 0  # 0 lets tests ask for an ephemeral port

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        scalar = self.scalar(node, ctx)
        if scalar is None:
            return INVALID
        try:
            return parse_host_port(scalar.text, self.min_port)
        except ValueError as exc:
            ctx.report.add(node.line, str(exc))
            return INVALID

    def describe(self) -> str:
        return "host:port"

    def schema(self) -> JsonSchema:
        return {"type": "string", "pattern": r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]+$"}


@dataclass(frozen=True, slots=True)
class Path(Kind):
    """A file path; relative ones are relative to the config directory (with `beside_file`:
    to the directory of the file it is written in). Stored absolute."""

    must_exist: bool = False
    dash: bool = False  # "-" is taken as written (stdout)
    beside_file: bool = False

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        scalar = self.scalar(node, ctx)
        if scalar is None:
            return INVALID
        if self.dash and scalar.text.strip() == "-":
            return "-"
        base = ctx.here if self.beside_file and ctx.here else ctx.directory
        path = os.path.normpath(os.path.join(base, scalar.text.strip()))
        if self.must_exist and not os.path.isfile(path):
            ctx.report.add(node.line, f"no such file: {scalar.text} ({path})")
            return INVALID
        return path

    def describe(self) -> str:
        if self.beside_file:
            return "a file path (relative: to the file's directory)"
        return "a file path, or - for stdout" if self.dash else "a file path"

    def schema(self) -> JsonSchema:
        return {"type": "string", "minLength": 1}


@dataclass(frozen=True, slots=True)
class DomainName(Kind):
    """An absolute name, trailing dot optional; `mailbox` also takes user@domain."""

    mailbox: bool = False

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        scalar = self.scalar(node, ctx)
        if scalar is None:
            return INVALID
        try:
            return names.mailbox(scalar.text) if self.mailbox else names.absolute(scalar.text)
        except names.BadName as exc:
            ctx.report.add(node.line, f"bad name: {exc}")
            return INVALID

    def describe(self) -> str:
        return "a domain name or email address" if self.mailbox else "a domain name"

    def schema(self) -> JsonSchema:
        return {"type": "string", "minLength": 1, "maxLength": 255}


@dataclass(frozen=True, slots=True)
class HttpUrl(Kind):
    """http://host:port (with `https`, https:// too) → (url, HostPort)."""

    https: bool = False

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        scalar = self.scalar(node, ctx)
        if scalar is None:
            return INVALID
        text = scalar.text.strip()
        try:
            return parse_backend_url(text, self.https)
        except ValueError as exc:
            ctx.report.add(node.line, str(exc))
            return INVALID

    def describe(self) -> str:
        return "a URL http(s)://host:port" if self.https else "a URL http://host:port"

    def schema(self) -> JsonSchema:
        return {
            "type": "string",
            "pattern": rf"^{'https?' if self.https else 'http'}://[^/?#@]+/?$",
        }


_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_backend_url(text: str, https: bool = False) -> tuple[str, HostPort]:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"bad URL {text!r}") from None
    scheme = parts.scheme
    if scheme != "http" and not (https and scheme == "https"):
        only = "http:// and https://" if https else "http://"
        raise ValueError(f"bad URL {text!r}: only {only} URLs are supported")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"bad URL {text!r}: write only {scheme}://host:port")
    if parts.path not in ("", "/"):
        raise ValueError(f"bad URL {text!r}: a backend URL has no path")
    host = parts.hostname
    if not host:
        raise ValueError(f"bad URL {text!r}: no host")
    port = _DEFAULT_PORTS[scheme] if port is None else port
    if not 1 <= port <= 65535:
        raise ValueError(f"bad URL {text!r}: port out of range")
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}", HostPort(host, port)
