"""YAML text → a small tree of nodes that remember their line numbers.

PyYAML's safe loader turns a document into plain dicts and lists and forgets
where each value came from; it also keeps the last of two equal keys without a
word. Config errors must name `file:line`, and a repeated key is nearly always
a mistake, so we stop at PyYAML's node graph (composed by a `SafeLoader`
subclass, never the full loader) and convert it ourselves: mappings keep their
key order, every node keeps its 1-based line, and duplicate keys are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from gslb.config.problems import Report

_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"


# libyaml's safe loader when PyYAML was built with it (same results, ~5x faster).
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class MarkedLoader(_SafeBase):  # type: ignore[misc,valid-type]
    """A safe loader; only its composer and scalar constructors are used."""


class PureMarkedLoader(yaml.SafeLoader):
    """The pure-Python safe loader (what MarkedLoader is without libyaml)."""


@dataclass(frozen=True, slots=True)
class YScalar:
    value: object  # what the safe loader makes of it: str, int, float, bool, None, ...
    text: str  # the scalar's text after unquoting, e.g. "NO" where `value` is False
    plain: bool  # written without quotes
    line: int

    @property
    def is_null(self) -> bool:
        return self.plain and self.value is None


@dataclass(frozen=True, slots=True)
class YSeq:
    items: tuple[YNode, ...]
    line: int


@dataclass(frozen=True, slots=True)
class YMap:
    items: tuple[tuple[YScalar, YNode], ...]
    line: int

    def keys(self) -> tuple[str, ...]:
        return tuple(key.text for key, _ in self.items)


YNode = YScalar | YSeq | YMap


def shape_name(node: YNode) -> str:
    """How a node reads in an error message: "a mapping", "a list", "a string" ..."""
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YSeq):
        return "a list"
    if node.is_null:
        return "nothing (null)"
    value = node.value
    if isinstance(value, bool):
        return f"a boolean ({node.text})"
    if isinstance(value, int):
        return f"an integer ({node.text})"
    if isinstance(value, float):
        return f"a number ({node.text})"
    return f"a string ({node.text!r})" if isinstance(value, str) else f"{node.text!r}"


def parse_yaml(
    text: str, report: Report, loader_class: type[yaml.SafeLoader] = MarkedLoader
) -> YNode | None:
    """Parse one YAML document; None for an empty one or after a reported problem."""
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        return _Converter(loader, report).convert(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        what = exc.problem or exc.context or "invalid YAML"
        report.add(line, f"YAML syntax error: {what}")
        return None
    except yaml.YAMLError as exc:
        report.add(0, f"YAML error: {exc}")
        return None
    finally:
        loader.dispose()


class _Converter:
    """Walks PyYAML's node graph once; shared (aliased) nodes are converted once."""

    def __init__(self, loader: yaml.SafeLoader, report: Report) -> None:
        self._loader = loader
        self._report = report
        self._done: dict[int, YNode] = {}
        self._active: set[int] = set()

    def convert(self, node: yaml.Node) -> YNode:
        key = id(node)
        done = self._done.get(key)
        if done is not None:
            return done
        if key in self._active:
            raise yaml.constructor.ConstructorError(None, None, "recursive alias", node.start_mark)
        self._active.add(key)
        try:
            result = self._convert(node)
        finally:
            self._active.discard(key)
        self._done[key] = result
        return result

    def _convert(self, node: yaml.Node) -> YNode:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return YSeq(tuple(self.convert(item) for item in node.value), line)
        assert isinstance(node, yaml.MappingNode)
        return self._mapping(node)

    def _scalar(self, node: yaml.ScalarNode) -> YScalar:
        value = self._loader.construct_object(node, deep=True)
        return YScalar(
            value=value,
            text=str(node.value),
            plain=not node.style,  # None (pure Python) or "" (libyaml)
            line=node.start_mark.line + 1,
        )

    def _mapping(self, node: yaml.MappingNode) -> YMap:
        own: list[tuple[YScalar, YNode]] = []
        merged: list[tuple[YScalar, YNode]] = []
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(self._merge_source(value_node))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._report.add(
                    key_node.start_mark.line + 1, "a mapping key must be a plain value"
                )
                continue
            key = self._scalar(key_node)
            if key.text in first_line:
                self._report.add(
                    key.line, f"duplicate key {key.text!r} (first at line {first_line[key.text]})"
                )
                continue
            first_line[key.text] = key.line
            own.append((key, self.convert(value_node)))
        # YAML merge keys (`<<: *defaults`): the mapping's own keys win.
        for key, value in merged:
            if key.text not in first_line:
                first_line[key.text] = key.line
                own.append((key, value))
        return YMap(tuple(own), node.start_mark.line + 1)

    def _merge_source(self, node: yaml.Node) -> list[tuple[YScalar, YNode]]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        items: list[tuple[YScalar, YNode]] = []
        for source in sources:
            converted = self.convert(source)
            if not isinstance(converted, YMap):
                self._report.add(converted.line, "a merge key (<<) needs a mapping")
                continue
            items.extend(converted.items)
        return items
