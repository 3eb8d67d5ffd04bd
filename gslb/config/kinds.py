"""The value-kind protocol shared by scalar kinds and tables.

A kind parses one YAML node, reports what is wrong at the node's line, and
describes itself as JSON Schema. Kinds return `INVALID` after reporting a
problem; callers carry on so that one run finds every problem.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar

from gslb.config.problems import Report
from gslb.config.yamlmarks import YNode, YScalar, shape_name

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
    here: str = ""  # absolute directory of the file being read (Path(beside_file=True))


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


def suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """' (did you mean 'x'?)' for a close choice, else ''. Case is ignored when matching."""
    folded = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(folded), n=1, cutoff=0.6)
    return f" (did you mean {folded[close[0]]!r}?)" if close else ""
