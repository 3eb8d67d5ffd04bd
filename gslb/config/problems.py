"""Collecting problems: each file gets a Report; the loader raises them all at once."""

from __future__ import annotations

from gslb.errors import Problem


class Report:
    """The problems found in one file, in the order found."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, message))

    def __len__(self) -> int:
        return len(self.problems)
