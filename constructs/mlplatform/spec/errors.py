"""Spec errors that name the file, the field path, the bad value and what is allowed."""

from __future__ import annotations

from pathlib import Path


class SpecError(Exception):
    """A spec file is invalid. `problems` holds one readable line per problem."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid spec {path}:\n{lines}")
