"""One template per object: the object as every environment renders it, with what differs made a reference.

`plan_object` walks one object (one file of dist/<env>/) across the environments that have it and returns a
tree of nodes:
- `Literal`: the same value in every environment, written as is;
- `Reference`: a field of the spec (`$v.spec...`, $v the environment's values) that holds the value in every
  environment, verbatim or
  inside a longer string (a host in a URL, a digest after an image name);
- `Mapping` / `Sequence`: walked further; a key that only some environments have is written under a condition;
- anything else is a value the synth computed (a quota sum, a config hash, a list whose length differs): it
  goes into that environment's values file under `<env>.objects.<object>."<JSON pointer>"`, and the template
  reads it.

Matching a value to a spec field is evidence, not guesswork: the same field must hold it in every environment
that has the object, and exactly one field may (ties are broken by the words the object's name shares with
the field's path, else the value stays computed). Numbers count only where they differ between environments.
Whatever the plan, `helm template` with an environment's values must give back that environment's dist/
exactly: `make helm` and the tests check it object by object.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

#: A string the same in every environment says which spec field it came from only if it is this long and
#: punctuated (a name, host or digest), or twice as long; one that differs between environments always does.
MIN_EVIDENT_STRING = 6
#: A mapping or list whose JSON is shorter than this is matched only where it differs between environments.
MIN_EVIDENT_JSON = 20
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PUNCTUATED = re.compile(r"[-.:/@_]")
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

Path = tuple[str | int, ...]
#: A spec field, and the text around its value where the value sits inside a longer string.
Candidate = tuple[Path, str, str]


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Reference:
    """A Go template expression whose value, as JSON, is the field's value."""

    expression: str


@dataclass(frozen=True)
class Entry:
    key: str
    node: Node
    #: The values key whose presence says the key is there; None: every environment has the key.
    condition: str | None = None


@dataclass(frozen=True)
class Mapping_:
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Sequence_:
    items: tuple[Node, ...]


Node = Literal | Reference | Mapping_ | Sequence_


@dataclass
class Spec:
    """One environment's spec (its overlay as validated, with defaults), indexed by every node's JSON."""

    paths: dict[str, list[Path]] = field(default_factory=dict)
    strings: list[tuple[Path, str]] = field(default_factory=list)
    #: string -> the fields found inside it (_embedded), as computed once
    embedded: dict[str, set[Candidate]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, dumped: Mapping[str, Any]) -> Spec:
        spec = cls()
        for path, value in _walk(dumped, ()):
            if isinstance(value, bool) or value is None or value in ({}, []):
                continue
            spec.paths.setdefault(_canonical(value), []).append(path)
            if isinstance(value, str) and _distinctive(value):
                spec.strings.append((path, value))
        return spec


@dataclass
class Computed:
    """What the templates read from each environment's values: environment -> JSON pointer -> value."""

    by_environment: dict[str, dict[str, Any]] = field(default_factory=dict)

    def put(self, environment: str, pointer: str, value: Any) -> None:
        self.by_environment.setdefault(environment, {})[pointer] = value


def plan_object(name: str, rendered: dict[str, Any], specs: dict[str, Spec], computed: Computed) -> Node:
    """The template of object `name` from each environment's copy of it (environment -> object).

    Renderings that share both the object and the Spec (the same Python objects: an object a switch does
    not change) are planned once, and what is computed for one is put for each."""
    words = set(_words(name))
    groups: dict[tuple[int, int], list[str]] = {}
    for key, obj in rendered.items():
        groups.setdefault((id(obj), id(specs[key])), []).append(key)
    planned = Computed()
    node = _plan({keys[0]: rendered[keys[0]] for keys in groups.values()}, (), specs, planned, words)
    for keys in groups.values():
        for key in keys:
            for pointer, value in planned.by_environment.get(keys[0], {}).items():
                computed.put(key, pointer, value)
    return node


def _plan(
    values: dict[str, Any], path: Path, specs: dict[str, Spec], computed: Computed, words: set[str]
) -> Node:
    reference = _match(values, specs, words, path[-1] if path else "")
    if reference is not None:
        return reference
    first = next(iter(values.values()))
    same = all(v == first for v in values.values())
    if all(isinstance(v, dict) for v in values.values()) and len({not v for v in values.values()}) == 1:
        return _plan_mapping(values, path, specs, computed, words)
    if all(isinstance(v, list) for v in values.values()) and len({len(v) for v in values.values()}) == 1:
        items = tuple(
            _plan({env: v[i] for env, v in values.items()}, (*path, i), specs, computed, words)
            for i in range(len(first))
        )
        return Literal(first) if same and all(isinstance(i, Literal) for i in items) else Sequence_(items)
    if same:
        return Literal(first)
    pointer = pointer_of(path)
    for env, value in values.items():
        if value is None:
            raise ValueError(f"{pointer}: a null differs between environments; Helm would drop the key")
        computed.put(env, pointer, value)
    return Reference(f"index $o {json.dumps(pointer)}")


def _plan_mapping(
    values: dict[str, Any], path: Path, specs: dict[str, Spec], computed: Computed, words: set[str]
) -> Node:
    keys: dict[str, None] = {}
    for value in values.values():
        keys.update(dict.fromkeys(value))
    entries = []
    for key in keys:
        having = {env: v[key] for env, v in values.items() if key in v}
        node = _plan(having, (*path, key), specs, computed, words)
        condition = None
        if len(having) < len(values):
            condition = pointer_of((*path, key))
            if not (isinstance(node, Reference) and node.expression.startswith("index $o")):
                for env in having:  # no computed value there to tell: a presence mark
                    computed.put(env, condition, True)
        entries.append(Entry(key=key, node=node, condition=condition))
    if all(e.condition is None and isinstance(e.node, Literal) for e in entries):
        return Literal(next(iter(values.values())))
    return Mapping_(tuple(entries))


def _match(
    values: dict[str, Any], specs: dict[str, Spec], words: set[str], key: str | int
) -> Reference | None:
    """The one spec field that holds these values in every environment, verbatim or inside a string."""
    sample = next(iter(values.values()))
    if isinstance(sample, bool) or sample is None or sample in ({}, []):
        return None
    evident = any(v != sample for v in values.values()) or (
        len(_canonical(sample)) >= MIN_EVIDENT_JSON
        if isinstance(sample, dict | list)
        else isinstance(sample, str) and _distinctive(sample)
    )
    # a number or a short string the same everywhere: only from a spec field of the same name (`replicas`)
    same_name = not evident

    canonical: dict[int, str] = {}  # renderings share their values' objects: each is written once

    def exactly(env: str, value: Any) -> set[Candidate]:
        if id(value) not in canonical:
            canonical[id(value)] = _canonical(value)
        paths = specs[env].paths.get(canonical[id(value)], [])
        return {(p, "", "") for p in paths if not same_name or p[-1] == key}

    exact = _agreed(values, exactly)
    if same_name:
        return Reference(_expression(*next(iter(exact)))) if len(exact) == 1 else None
    if not exact and isinstance(sample, str):
        exact = _agreed(values, lambda env, v: _embedded(v, specs[env]) if isinstance(v, str) else set())
    best = _best(exact, words) if exact else None
    return None if best is None else Reference(_expression(*best))


def _agreed(values: dict[str, Any], found: Callable[[str, Any], set[Candidate]]) -> set[Candidate]:
    """The candidates every environment's value has."""
    agreed: set[Candidate] | None = None
    for env, value in values.items():
        agreed = found(env, value) if agreed is None else agreed & found(env, value)
        if not agreed:
            return set()
    return agreed or set()


def _embedded(value: str, spec: Spec) -> set[Candidate]:
    if value not in spec.embedded:
        spec.embedded[value] = _embedded_in(value, spec)
    return spec.embedded[value]


def _embedded_in(value: str, spec: Spec) -> set[Candidate]:
    found = set()
    for path, text in spec.strings:
        if text != value and value.count(text) == 1:
            prefix, _, suffix = value.partition(text)
            if not (prefix[-1:].isalnum() or suffix[:1].isalnum()):  # a whole word: not "ml" + "platform"
                found.add((path, prefix, suffix))
    return found


def _distinctive(text: str) -> bool:
    """Long, or shaped like a name, host, path or digest: a string that says where it came from."""
    return len(text) >= MIN_EVIDENT_STRING and (
        len(text) >= 2 * MIN_EVIDENT_STRING or bool(_PUNCTUATED.search(text))
    )


def _best(candidates: set[Candidate], words: set[str]) -> Candidate | None:
    if len(candidates) == 1:
        return next(iter(candidates))
    scored = sorted(((len(words & _path_words(c[0])), c) for c in candidates), key=lambda s: -s[0])
    if scored[0][0] > scored[1][0]:
        return scored[0][1]
    return None


def _expression(path: Path, prefix: str, suffix: str) -> str:
    if all(isinstance(p, str) and _IDENTIFIER.match(p) for p in path):
        accessor = "$v.spec." + ".".join(str(p) for p in path)
    else:
        accessor = "(index $v.spec " + " ".join(json.dumps(p) for p in path) + ")"
    if not prefix and not suffix:
        return accessor
    return f"printf {json.dumps('%s%s%s')} {json.dumps(prefix)} {accessor} {json.dumps(suffix)}"


def pointer_of(path: Path) -> str:
    """RFC 6901 JSON pointer of a path: `/spec/template/spec/containers/0/image`."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _walk(value: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    if path:
        yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, (*path, i))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _words(text: str) -> Iterator[str]:
    for part in re.split(r"[^A-Za-z0-9]+", text):
        yield from (w.lower() for w in _WORD.findall(part))


@functools.cache
def _path_words(path: Path) -> frozenset[str]:
    return frozenset(w for p in path if isinstance(p, str) for w in _words(p))
