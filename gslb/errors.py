"""The project's exceptions: one base, and a config error that carries every problem found."""

from __future__ import annotations

from dataclasses import dataclass


class GslbError(Exception):
    """Base of every error gslb raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in one config file, at one line (1-based; 0 when unknown)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ConfigError(GslbError):
    """A config directory that cannot be loaded; `problems` lists all that was found."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
