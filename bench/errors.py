"""Errors for input files that list every problem at once, so a user fixes a file in one pass."""
from __future__ import annotations


class ProblemsError(Exception):
    """`what` (e.g. "bench file x.toml") could not be used; `problems` lists every finding."""

    def __init__(self, what: str, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{what}: {len(problems)} problem(s):\n{lines}")
