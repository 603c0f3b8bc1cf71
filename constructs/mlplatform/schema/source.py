"""Read one spec file with the line of every field, refusing duplicate keys.

PyYAML's composer gives the node tree with marks (line, column); the data is constructed from the same tree by
the safe constructor, so the values are exactly what `yaml.safe_load` would give, and every field path can be
mapped back to the line it was written on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlplatform.schema.errors import FieldPath, Problem, format_path

MERGE_TAG = "tag:yaml.org,2002:merge"
#: libyaml's parser when PyYAML was built with it (the wheels are), the pure-Python one otherwise.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Source:
    """One parsed spec file: its data, the line of every field path, and the problems found while reading."""

    file: str  # as shown in messages: relative to the repository root
    data: Any = None
    lines: dict[FieldPath, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: Sequence[Any]) -> int:
        """The line of the deepest part of `path` that is in the file (1 when none is)."""
        found, _ = self._walk(path)
        return self.lines.get(found, 1)

    def display_path(self, path: Sequence[Any]) -> str:
        """`path` as written in the file: parts not in it (a union's tag) are dropped, except the last."""
        found, rest = self._walk(path)
        tail = [p for p in rest[-1:] if isinstance(p, str | int)]
        return format_path([*found, *tail])

    def problem(self, path: Sequence[Any], message: str) -> Problem:
        return Problem(self.file, self.line_of(path), self.display_path(path), message)

    def _walk(self, path: Sequence[Any]) -> tuple[FieldPath, list[Any]]:
        found: FieldPath = ()
        rest: list[Any] = []
        for part in path:
            candidate = (*found, part)
            if candidate in self.lines:
                found = candidate
                rest = []
            else:
                rest.append(part)
        return found, rest


def read(path: Path, *, shown_as: str) -> Source:
    """Parse `path`. YAML errors and duplicate keys become problems (with their line), never exceptions."""
    source = Source(file=shown_as)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        source.problems.append(Problem(shown_as, 1, "", f"cannot read: {exc}"))
        return source
    loader = SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            source.problems += _index(source, node, ())
            source.data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        source.problems.append(Problem(shown_as, line, "", f"not valid YAML: {what}"))
    except yaml.YAMLError as exc:
        source.problems.append(Problem(shown_as, 1, "", f"not valid YAML: {exc}"))
    finally:
        loader.dispose()
    return source


def _index(source: Source, node: yaml.Node, path: FieldPath) -> list[Problem]:
    """Record the line of every field below `node`; return a problem for every duplicate key."""
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            line = key_node.start_mark.line + 1
            key = _key(key_node)
            child = (*path, key)
            identity = (key_node.tag, key_node.value)
            if identity in first:
                problems.append(
                    Problem(
                        source.file,
                        line,
                        format_path(child),
                        f"duplicate key {key!r} (first at line {first[identity]}); each key may appear once",
                    )
                )
                continue
            first[identity] = line
            source.lines[child] = line
            problems += _index(source, value_node, child)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            source.lines[(*path, i)] = item.start_mark.line + 1
            problems += _index(source, item, (*path, i))
    return problems


def _key(node: yaml.ScalarNode) -> str | int:
    """A mapping key as the constructor makes it (the spec's keys are strings; an int key stays an int)."""
    if node.tag == "tag:yaml.org,2002:int":
        try:
            return int(node.value)
        except ValueError:
            return str(node.value)
    return str(node.value)
