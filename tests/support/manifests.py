"""Find an object by kind and name among loaded manifests: a list of objects, or file name -> documents (as
dist/<env>/ reads), searched in file-name order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

Objects = Iterable[Mapping[str, Any]] | Mapping[str, Iterable[Mapping[str, Any]]]


def _each(objects: Objects) -> Iterator[dict[str, Any]]:
    if isinstance(objects, Mapping):
        for file in sorted(objects):
            yield from _each(objects[file])
        return
    for obj in objects:
        if isinstance(obj, dict) and obj:
            yield obj


def _matches(obj: Mapping[str, Any], kind: str, name: str | None) -> bool:
    return obj.get("kind") == kind and (name is None or (obj.get("metadata") or {}).get("name") == name)


def first(objects: Objects, kind: str, name: str | None = None) -> dict[str, Any]:
    """The first object of `kind` (named `name`, when given); LookupError when there is none."""
    for obj in _each(objects):
        if _matches(obj, kind, name):
            return obj
    raise LookupError(f"no {kind} {name or ''}".rstrip())


def one(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    """The one object of `kind` named `name`: fails the test (with how many there are) unless exactly one."""
    found = [obj for obj in _each(objects) if _matches(obj, kind, name)]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]
