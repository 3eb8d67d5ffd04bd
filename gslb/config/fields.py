"""Value kinds: each parses one YAML node, reports what is wrong at its line, and
describes itself as JSON Schema.

A `Table` is the declarative description of one mapping kind (its keys, their
kinds, defaults and whether they are required); the loader walks tables, and
`gslb.config.jsonschema` turns the same tables into JSON Schema, so the two
cannot drift apart. Kinds return `INVALID` after reporting a problem; callers
carry on so that one run finds every problem.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from gslb.config import names
from gslb.config.problems import Report
from gslb.config.yamlmarks import YMap, YNode, YScalar, YSeq, shape_name
from gslb.model import HostPort

T = TypeVar("T")
Shape = Literal["scalar", "seq", "map", "any"]
JsonSchema = dict[str, Any]


class Invalid:
    """The type of INVALID: a value that failed to parse (the problem is already reported)."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID = Invalid()


@dataclass(frozen=True, slots=True)
class Marked(Generic[T]):
    """A parsed value and the line it was written on."""

    value: T
    line: int


@dataclass(frozen=True, slots=True)
class Ctx:
    report: Report
    directory: str  # absolute; relative paths in the file are relative to it


class Kind(ABC):
    """One kind of value. `shape` is the YAML node it expects (for OneOf)."""

    __slots__ = ()
    shape: ClassVar[Shape] = "scalar"

    @abstractmethod
    def parse(self, node: YNode, ctx: Ctx) -> Any:
        """The parsed value, or INVALID after reporting the problem."""

    @abstractmethod
    def describe(self) -> str:
        """A short phrase for messages: "an integer 0..65535"."""

    @abstractmethod
    def schema(self) -> JsonSchema:
        """This kind as a JSON Schema fragment."""

    def mismatch(self, node: YNode, ctx: Ctx) -> Invalid:
        ctx.report.add(node.line, f"expected {self.describe()}, got {shape_name(node)}")
        return INVALID

    def scalar(self, node: YNode, ctx: Ctx) -> YScalar | None:
        """The node if it is a non-null scalar; else report the mismatch."""
        if isinstance(node, YScalar) and not node.is_null:
            return node
        self.mismatch(node, ctx)
        return None


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
    """A file path; relative ones are relative to the config directory. Stored absolute."""

    must_exist: bool = False

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        scalar = self.scalar(node, ctx)
        if scalar is None:
            return INVALID
        path = os.path.normpath(os.path.join(ctx.directory, scalar.text.strip()))
        if self.must_exist and not os.path.isfile(path):
            ctx.report.add(node.line, f"no such file: {scalar.text} ({path})")
            return INVALID
        return path

    def describe(self) -> str:
        return "a file path"

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
    """http://host:port of a backend → (url, HostPort). Only plain HTTP is proxied."""

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        scalar = self.scalar(node, ctx)
        if scalar is None:
            return INVALID
        text = scalar.text.strip()
        try:
            return parse_backend_url(text)
        except ValueError as exc:
            ctx.report.add(node.line, str(exc))
            return INVALID

    def describe(self) -> str:
        return "a URL http://host:port"

    def schema(self) -> JsonSchema:
        return {"type": "string", "pattern": r"^http://[^/?#@]+/?$"}


def parse_backend_url(text: str) -> tuple[str, HostPort]:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"bad URL {text!r}") from None
    if parts.scheme != "http":
        raise ValueError(f"bad URL {text!r}: only http:// backends are supported")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"bad URL {text!r}: write only http://host:port")
    if parts.path not in ("", "/"):
        raise ValueError(f"bad URL {text!r}: a backend URL has no path")
    host = parts.hostname
    if not host:
        raise ValueError(f"bad URL {text!r}: no host")
    port = 80 if port is None else port
    if not 1 <= port <= 65535:
        raise ValueError(f"bad URL {text!r}: port out of range")
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}", HostPort(host, port)


@dataclass(frozen=True, slots=True)
class ListOf(Kind):
    """A list (tuple) of one kind; `single_ok` also takes a lone value as a list of one."""

    item: Kind
    min_items: int = 0
    single_ok: bool = False
    marked: bool = False  # items as Marked(value, line)

    @property
    def shape(self) -> Shape:  # type: ignore[override]
        return "any" if self.single_ok else "seq"

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        if isinstance(node, YSeq):
            nodes = node.items
        elif self.single_ok and not isinstance(node, YMap) and not _is_null(node):
            nodes = (node,)
        else:
            return self.mismatch(node, ctx)
        if len(nodes) < self.min_items:
            ctx.report.add(node.line, f"needs at least {self.min_items} item(s)")
            return INVALID
        out: list[Any] = []
        for item in nodes:
            value = self.item.parse(item, ctx)
            if value is not INVALID:
                out.append(Marked(value, item.line) if self.marked else value)
        return tuple(out)

    def describe(self) -> str:
        return f"a list of {_plural(self.item.describe())}"

    def schema(self) -> JsonSchema:
        array: JsonSchema = {"type": "array", "items": self.item.schema()}
        if self.min_items:
            array["minItems"] = self.min_items
        return {"anyOf": [array, self.item.schema()]} if self.single_ok else array


@dataclass(frozen=True, slots=True)
class MapOf(Kind):
    """A mapping with free keys: → tuple of (Marked key text, value); bad values are dropped."""

    value: Kind
    key_what: str = "a name"
    key_pattern: str | None = None
    shape: ClassVar[Shape] = "map"

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        if not isinstance(node, YMap):
            return self.mismatch(node, ctx)
        out: list[tuple[Marked[str], Any]] = []
        for key, value_node in node.items:
            if self.key_pattern is not None and not re.fullmatch(self.key_pattern, key.text):
                ctx.report.add(key.line, f"{key.text!r} is not {self.key_what}")
                continue
            value = self.value.parse(value_node, ctx)
            if value is not INVALID:
                out.append((Marked(key.text, key.line), value))
        return tuple(out)

    def describe(self) -> str:
        return f"a mapping of {self.key_what} to {self.value.describe()}"

    def schema(self) -> JsonSchema:
        out: JsonSchema = {"type": "object", "additionalProperties": self.value.schema()}
        if self.key_pattern is not None:
            out["propertyNames"] = {"pattern": f"^(?:{self.key_pattern})$"}
        return out


@dataclass(frozen=True, slots=True)
class OneOf(Kind):
    """The first option whose node shape matches (a scalar, a list or a mapping)."""

    options: tuple[Kind, ...]
    shape: ClassVar[Shape] = "any"

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        wanted = "map" if isinstance(node, YMap) else "seq" if isinstance(node, YSeq) else "scalar"
        for option in self.options:
            if option.shape in (wanted, "any"):
                return option.parse(node, ctx)
        return self.mismatch(node, ctx)

    def describe(self) -> str:
        return " or ".join(option.describe() for option in self.options)

    def schema(self) -> JsonSchema:
        return {"anyOf": [option.schema() for option in self.options]}


@dataclass(frozen=True, slots=True)
class Field:
    key: str
    kind: Kind
    default: Any = None  # used when the key is absent (None: absent, or decided by the loader)
    required: bool = False
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Parsed:
    """One mapping read through a Table: every field's value (written, else default)."""

    table: str
    values: Mapping[str, Any]
    lines: Mapping[str, int]  # the line of each key that was written
    line: int  # the line of the mapping itself
    ok: bool  # no problem was found inside

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def given(self, key: str) -> bool:
        return key in self.lines

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)

    def written(self) -> dict[str, Any]:
        """Only the keys that were written (for partial specs merged over a base)."""
        return {key: self.values[key] for key in self.lines}


@dataclass(frozen=True, slots=True)
class Table(Kind):
    """The declarative description of one mapping kind."""

    name: str
    fields: tuple[Field, ...]
    doc: str = ""
    by_key: Mapping[str, Field] = field(init=False, repr=False, compare=False)
    shape: ClassVar[Shape] = "map"

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_key", {f.key: f for f in self.fields})

    def parse(self, node: YNode, ctx: Ctx) -> Any:
        if not isinstance(node, YMap):
            return self.mismatch(node, ctx)
        before = len(ctx.report)
        values = {f.key: f.default for f in self.fields}
        lines: dict[str, int] = {}
        for key, value_node in node.items:
            spec = self.by_key.get(key.text)
            if spec is None:
                ctx.report.add(key.line, self.unknown_key(key.text))
                continue
            lines[key.text] = key.line
            value = spec.kind.parse(value_node, ctx)
            if value is not INVALID:
                values[key.text] = value
        for spec in self.fields:
            if spec.required and spec.key not in lines:
                ctx.report.add(node.line, f"missing required key {spec.key!r} in {self.name}")
        return Parsed(self.name, values, lines, node.line, ok=len(ctx.report) == before)

    def unknown_key(self, key: str) -> str:
        allowed = [f.key for f in self.fields]
        return f"unknown key {key!r} in {self.name}{suggest(key, allowed)}; allowed: " + ", ".join(
            sorted(allowed)
        )

    def describe(self) -> str:
        return f"a mapping ({self.name})"

    def schema(self) -> JsonSchema:
        properties: dict[str, JsonSchema] = {}
        for spec in self.fields:
            prop = spec.kind.schema()
            if spec.doc:
                prop = {**prop, "description": spec.doc}
            if spec.default is not None:
                prop = {**prop, "default": json_value(spec.default)}
            properties[spec.key] = prop
        out: JsonSchema = {
            "type": "object",
            "title": self.name,
            "properties": properties,
            "additionalProperties": False,
        }
        if self.doc:
            out["description"] = self.doc
        required = [spec.key for spec in self.fields if spec.required]
        if required:
            out["required"] = required
        return out


def suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """' (did you mean 'x'?)' for a close choice, else ''. Case is ignored when matching."""
    folded = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(folded), n=1, cutoff=0.6)
    return f" (did you mean {folded[close[0]]!r}?)" if close else ""


def json_value(value: Any) -> Any:
    """A default as JSON: tuples → lists, HostPort → "host:port"."""
    if isinstance(value, tuple | list | frozenset):
        items = sorted(value) if isinstance(value, frozenset) else value
        return [json_value(item) for item in items]
    if isinstance(value, HostPort):
        return str(value)
    return value


def _is_null(node: YNode) -> bool:
    return isinstance(node, YScalar) and node.is_null


def _plural(phrase: str) -> str:
    for article in ("an ", "a "):
        if phrase.startswith(article):
            return phrase[len(article) :]
    return phrase
