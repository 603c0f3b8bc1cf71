"""The spec line behind a finding: the field of overlays/ that produced the object, or its offending field.

Only for reporting (the checks never use it). The object is traced by what it says about itself: the
`app.kubernetes.io/name` label names the component (a service, `<service>-worker`, `redis`, `jobs-redis`), a
NetworkPolicy's name the connection it opens, and the kind the environment-wide settings (namespace, quota).
The dist/ field the engine names, or failing that the rule, narrows it to a field of that component
(`resources.limits.memory`, `imageDigest`, `replicas`). Lines come from the spec loader's line map
(`mlplatform.schema.source`): the environment's overlay first, then `platform.yaml`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlplatform.schema import source as spec_source
from mlplatform.schema.errors import format_path

PLATFORM = "platform.yaml"
NAME_LABEL = "app.kubernetes.io/name"
WORKER_SUFFIX = "-worker"
#: For a finding that names no field: the spec fields its rule is about (first one present wins).
RULE_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "require-resources": (("resources",),),
    "limits-cover-requests": (("resources",),),
    "require-image-digest": (("imageDigest",), ("image",)),
    "restrict-image-registries": (("imageDigest",), ("image",)),
    "prod-replicas": (("autoscaling",), ("replicas",)),
    "prod-pdb": (("autoscaling",), ("replicas",)),
    "quota-admits-max-scale": (("autoscaling",), ("replicas",), ("resources",)),
    "redis-maxmemory-headroom": (("maxmemory",), ("resources",)),
    "ingress-tls": (("host",),),
    "knative-canary-percent": (("canary", "weight"),),
}
#: Kinds that the environment-wide settings make.
ENVIRONMENT_FIELDS = {
    "Namespace": ("namespace",),
    "ResourceQuota": ("quota",),
    "LimitRange": ("quota",),
}
_POLICY_NAME = re.compile(r"^allow-(?P<a>.+?)-(?P<dir>to|from)-(?P<b>.+)$")


class Origins:
    """Reads each overlay once (with its line map) and answers `file:line: field.path` for findings."""

    def __init__(self, overlays: Path, repo_root: Path) -> None:
        self.overlays = overlays
        self.repo_root = repo_root
        self._sources: dict[str, spec_source.Source | None] = {}

    def of(
        self, env: str, kind: str, name: str, labels: dict[str, Any], rule: str, field: Sequence[str | int]
    ) -> str:
        """`overlays/<file>.yaml:<line>: <field.path>` of the spec field behind the object ("" if none)."""
        base, tails = self._component(env, kind, name, labels)
        if base is None:
            return ""
        suffixes = [_field_suffix(field)] if _field_suffix(field) else []
        suffixes += [list(s) for s in RULE_FIELDS.get(rule, ())]
        files = [f"{env}.yaml", PLATFORM] if base[:1] != ("connections",) else [PLATFORM]
        for suffix in [*suffixes, []]:
            for file in files:
                src = self._source(file)
                path = (*base, *tails, *suffix)
                if src is not None and path in src.lines:
                    return f"{src.file}:{src.lines[path]}: {format_path(path)}"
        for file in files:  # the deepest part of the component that a file has
            src = self._source(file)
            for n in range(len(base), 0, -1):
                if src is not None and base[:n] in src.lines:
                    return f"{src.file}:{src.lines[base[:n]]}: {format_path(base[:n])}"
        return ""

    def _component(
        self, env: str, kind: str, name: str, labels: dict[str, Any]
    ) -> tuple[tuple[str | int, ...] | None, tuple[str, ...]]:
        """(the spec path of the component that made the object, the path below it to try first)."""
        if kind in ENVIRONMENT_FIELDS:
            return ENVIRONMENT_FIELDS[kind], ()
        if kind == "NetworkPolicy":
            return self._connection(name), ()
        app = str(labels.get(NAME_LABEL, ""))
        services = self._services(env)
        if app == "jobs-redis":
            return ("jobs",), ("redis",)
        if app == "redis":
            return ("redis",), ()
        if app.endswith(WORKER_SUFFIX) and app.removesuffix(WORKER_SUFFIX) in services:
            return ("jobs",), ()
        if app in services:
            return ("services", app), ()
        return None, ()

    def _connection(self, policy: str) -> tuple[str | int, ...] | None:
        match = _POLICY_NAME.match(policy)
        platform = self._source(PLATFORM)
        if match is None or platform is None or not isinstance(platform.data, dict):
            return ("namespace",)  # default-deny, DNS: the environment's baseline
        a, b = match["a"], match["b"]
        want = (a, b) if match["dir"] == "to" else (b, a)
        for i, conn in enumerate(platform.data.get("connections") or []):
            if isinstance(conn, dict) and (str(conn.get("from")), str(conn.get("to"))) == want:
                return ("connections", i)
        return ("connections",)

    def _services(self, env: str) -> set[str]:
        names: set[str] = set()
        for file in (f"{env}.yaml", PLATFORM):
            src = self._source(file)
            if src is not None and isinstance(src.data, dict):
                names |= {str(s) for s in (src.data.get("services") or {})}
        return names

    def _source(self, file: str) -> spec_source.Source | None:
        if file not in self._sources:
            path = self.overlays / file
            try:
                shown = str(path.resolve().relative_to(self.repo_root.resolve()))
            except ValueError:
                shown = str(path)
            self._sources[file] = spec_source.read(path, shown_as=shown) if path.is_file() else None
        return self._sources[file]


def _field_suffix(field: Sequence[str | int]) -> list[str | int]:
    """The spec field a dist/ field comes from, by its last recognisable part (resources, replicas, image)."""
    parts = list(field)
    if "resources" in parts:
        return parts[parts.index("resources") :]
    if parts and parts[-1] in ("replicas", "minReplicas", "maxReplicas"):
        return ["replicas"]
    if parts and parts[-1] == "image":
        return ["imageDigest"]
    return []
