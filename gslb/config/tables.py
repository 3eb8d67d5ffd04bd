"""Composite kinds: lists, free-key mappings, alternatives, and `Table`.

A `Table` is the declarative description of one mapping kind (its keys, their
kinds, defaults and whether they are required); the loader walks tables, and
`gslb.config.jsonschema` turns the same tables into JSON Schema, so the two
cannot drift apart.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from gslb.config.kinds import INVALID, Ctx, JsonSchema, Kind, Marked, Shape, suggest
from gslb.config.yamlmarks import YMap, YNode, YScalar, YSeq
from gslb.model import HostPort


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
        object.__setattr__(self, "by_key", MappingProxyType({f.key: f for f in self.fields}))

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


def json_value(value: Any) -> Any:
    """A default as JSON: tuples → lists, HostPort → "host:port", networks → CIDR text."""
    if isinstance(value, tuple | list | frozenset):
        items = sorted(value) if isinstance(value, frozenset) else value
        return [json_value(item) for item in items]
    if isinstance(value, HostPort | ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    return value


def _is_null(node: YNode) -> bool:
    return isinstance(node, YScalar) and node.is_null


def _plural(phrase: str) -> str:
    for article in ("an ", "a "):
        if phrase.startswith(article):
            return phrase[len(article) :]
    return phrase
