"""Spec errors: one line per problem, `file:line: field.path: what was wrong; allowed: what is allowed`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

#: A field path inside one spec file: mapping keys and list indexes, e.g. ("services", "inference", "path").
FieldPath = tuple[str | int, ...]

#: Longest line a problem should make (a message that would be longer says less, e.g. drops a list).
MAX_LINE = 200
#: Room a message leaves for its location (`overlays/platform.yaml:64: connections[1].from: `).
MAX_LOCATION = 60
#: Longest repr of a bad value that goes into a line (a whole mapping would drown the message).
MAX_VALUE_CHARS = 60


def format_path(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def short(value: object) -> str:
    """A bad value as it goes into a message: its repr cut to MAX_VALUE_CHARS; mappings and lists named."""
    if isinstance(value, dict):
        return "a mapping" if value else "{}"
    if isinstance(value, list):
        return "a list" if value else "[]"
    text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def choices(items: Iterable[str], *, most: int = 16, in_order: bool = False) -> str:
    """Allowed values for a message: sorted (or as given), comma-separated; all of them when there are at
    most `most` (a short list is never cut: the one left out would be the one the reader looks for)."""
    ordered = list(items) if in_order else sorted(items)
    shown = ", ".join(ordered[:most])
    more = len(ordered) - most
    return f"{shown} (and {more} more)" if more > 0 else shown or "none"


def did_you_mean(got: object, items: Iterable[str]) -> str:
    """` (did you mean 'metrics-scraper'?)` for a near miss among `items` (difflib's ratio), else ``."""
    close = difflib.get_close_matches(str(got), list(items), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown(what: str, got: str, items: Iterable[str]) -> str:
    """`unknown component 'postgres'; allowed: a, b, c`: the whole list, and the near miss first where
    there is one; when hint and list together would not fit one line, the hint and how many others."""
    names = sorted(items)
    close = difflib.get_close_matches(got, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    message = f"unknown {what} {got!r}{hint}; allowed: {choices(names)}"
    if close and len(message) > MAX_LINE - MAX_LOCATION:
        message = f"unknown {what} {got!r}{hint}; allowed: {close[0]} or {len(names) - 1} other {what}s"
    return message


@dataclass(frozen=True, order=True)
class Problem:
    """One problem: the file (relative to the repository root), its line (from 1), field and message."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class FieldProblems(ValueError):
    """Raised by a model validator: problems at field paths relative to the model being validated.

    The loader turns each into its own line with the file and line of that field (pydantic alone would report
    them at the model, with the model's whole input as the value).
    """

    def __init__(self, problems: list[tuple[FieldPath, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{format_path(p) or '.'}: {m}" for p, m in problems))


class SpecError(Exception):
    """The spec is invalid. `problems` holds one readable line per problem, across every file."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        count = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"invalid spec ({count} problem{'s' if count != 1 else ''}):\n{lines}")

    @property
    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]
