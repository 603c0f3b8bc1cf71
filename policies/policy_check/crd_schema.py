"""Every custom resource in dist/ against the openAPIV3Schema of its CRD, from the operators' Go modules.

The CRDs come from the projects' own modules at the versions in tools/versions.env (fetched into the Go module
cache by tools/setup/go-module-dir.sh); the schemas are validated with `jsonschema` (Draft 4, the dialect
OpenAPI v3.0 schemas follow). As the apiserver does with strict field validation, an object field the
schema does not list is an error unless `x-kubernetes-preserve-unknown-fields` is set; `nullable` admits
null. Ignored: the CEL rules of `x-kubernetes-validations`, `x-kubernetes-list-type`/`-map-keys`
uniqueness, and `format` (the apiserver checks those; this check reports the schema's structure, types,
enums, patterns, required fields and bounds). The extracted schemas are cached per module version, one
file per kind, under ~/.cache/mlplatform/crd-schemas/.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import jsonschema
import yaml

from policy_check.findings import Finding

RULE = "crd-schema"
CACHE_FORMAT = "3"  # bump when the cached layout or strict() changes


class _Loader(yaml.CSafeLoader):
    """PyYAML's safe loader, plus the `=` value tag (a bare `=` enum value in Prometheus Operator's CRDs)."""


def _value(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return loader.construct_scalar(cast(yaml.ScalarNode, node))


_Loader.add_constructor("tag:yaml.org,2002:value", _value)


class CrdError(Exception):
    """A pinned CRD source cannot be found or read."""


@dataclass(frozen=True)
class Source:
    key: str  # the prefix of <KEY>_MODULE / <KEY>_VERSION in tools/versions.env
    folder: str  # where the module keeps its CRDs
    groups: frozenset[str]


SOURCES = (
    Source("GATEWAY_API", "config/crd/standard", frozenset({"gateway.networking.k8s.io"})),
    Source(
        "EXTERNAL_SECRETS",
        "config/crds/bases",
        frozenset({"external-secrets.io", "generators.external-secrets.io"}),
    ),
    Source("KEDA", "config/crd/bases", frozenset({"keda.sh", "eventing.keda.sh"})),
    Source("PROMETHEUS_OPERATOR", "example/prometheus-operator-crd", frozenset({"monitoring.coreos.com"})),
    Source("ARGOCD", "manifests/crds", frozenset({"argoproj.io"})),
    Source(
        "KYVERNO",
        "config/crds",
        frozenset({"kyverno.io", "policies.kyverno.io", "reports.kyverno.io", "wgpolicyk8s.io"}),
    ),
    Source("KSERVE", "config/crd/full", frozenset({"serving.kserve.io"})),
    Source("ISTIO_API", "kubernetes", frozenset({"security.istio.io"})),
)


def read_versions(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def is_builtin(group: str) -> bool:
    """Kubernetes' own API groups: no dot (core, apps, batch, policy, ...) or *.k8s.io not owned by a CRD."""
    return "." not in group or (group.endswith(".k8s.io") and group != "gateway.networking.k8s.io")


class Schemas:
    """The CRD schemas of the pinned modules, loaded one source at a time as the objects need them."""

    def __init__(self, repo_root: Path, cache_dir: Path | None = None) -> None:
        self.repo_root = repo_root
        self.versions = read_versions(repo_root / "tools" / "versions.env")
        self.cache_dir = cache_dir or Path.home() / ".cache" / "mlplatform" / "crd-schemas"
        self._loaded: dict[tuple[str, str, str], dict[str, Any] | None] = {}
        self._validators: dict[tuple[str, str, str], jsonschema.Draft4Validator] = {}
        self._modcache: Path | None = None

    def source_of(self, group: str) -> Source | None:
        return next((s for s in SOURCES if group in s.groups), None)

    def module(self, source: Source) -> tuple[str, str]:
        module = self.versions.get(f"{source.key}_MODULE")
        version = self.versions.get(f"{source.key}_VERSION")
        if not module or not version:
            raise CrdError(f"tools/versions.env has no {source.key}_MODULE / {source.key}_VERSION")
        return module, version

    def crd(self, source: Source, group: str, kind: str) -> dict[str, Any] | None:
        """{"crd": name, "origin": module@version, "versions": {version: {"served", "schema"}}}, or None."""
        key = (source.key, group, kind)
        if key not in self._loaded:
            file = self._cache_folder(source) / f"{group}_{kind}.json"
            self._loaded[key] = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
        return self._loaded[key]

    def _cache_folder(self, source: Source) -> Path:
        """The source's CRDs, one JSON file per kind, extracted once per module version."""
        module, version = self.module(source)
        tag = hashlib.sha256(f"{CACHE_FORMAT} {module}@{version} {source.folder}".encode()).hexdigest()[:16]
        folder = self.cache_dir / f"{source.key.lower()}-{version}-{tag}"
        if (folder / "complete").is_file():
            return folder
        data = self._extract(self._module_dir(module, version) / source.folder, f"{module}@{version}")
        tmp = self.cache_dir / f".{folder.name}.tmp{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        for name, crd in data.items():
            (tmp / f"{name.replace('/', '_')}.json").write_text(
                json.dumps(crd, sort_keys=True), encoding="utf-8"
            )
        (tmp / "complete").write_text("", encoding="utf-8")
        try:
            tmp.replace(folder)
        except OSError:  # another run filled it first
            shutil.rmtree(tmp, ignore_errors=True)
        return folder

    def _module_dir(self, module: str, version: str) -> Path:
        if self._modcache is None:
            env = os.environ.get("GOMODCACHE")
            if not env:
                try:
                    out = subprocess.run(
                        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
                    )
                except (OSError, subprocess.CalledProcessError) as err:
                    raise CrdError(f"cannot find the Go module cache (go env GOMODCACHE): {err}") from err
                env = out.stdout.strip()
            self._modcache = Path(env)
        # the module cache escapes capitals as !lowercase
        escaped = "".join(f"!{c.lower()}" if c.isupper() else c for c in module)
        folder = self._modcache / f"{escaped}@{version}"
        if folder.is_dir():
            return folder
        script = self.repo_root / "tools" / "setup" / "go-module-dir.sh"
        proc = subprocess.run([str(script), module, version], capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not Path(proc.stdout.strip()).is_dir():
            raise CrdError(f"cannot fetch {module}@{version}: {(proc.stderr or proc.stdout).strip()}")
        return Path(proc.stdout.strip())

    @staticmethod
    def _extract(folder: Path, origin: str) -> dict[str, Any]:
        if not folder.is_dir():
            raise CrdError(f"{origin} has no CRD folder {folder}")
        found: dict[str, Any] = {}
        for file in sorted(folder.rglob("*.yaml")):
            if file.name.startswith("kustomization"):
                continue
            with file.open(encoding="utf-8") as handle:
                for doc in yaml.load_all(handle, Loader=_Loader):
                    if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                        continue
                    spec = doc["spec"]
                    versions = {
                        v["name"]: {
                            "served": bool(v.get("served", True)),
                            "schema": strict((v.get("schema") or {}).get("openAPIV3Schema") or {}),
                        }
                        for v in spec["versions"]
                    }
                    found[f"{spec['group']}/{spec['names']['kind']}"] = {
                        "crd": doc["metadata"]["name"],
                        "origin": origin,
                        "versions": versions,
                    }
        return found

    def validator(self, group: str, kind: str, version: str) -> jsonschema.Draft4Validator | str:
        """A validator for the CRD version, or why there is none."""
        key = (group, kind, version)
        if key in self._validators:
            return self._validators[key]
        source = self.source_of(group)
        if source is None:
            return f"no pinned module provides CRDs of group {group} (known: {_known_groups()})"
        crd = self.crd(source, group, kind)
        module, mversion = self.module(source)
        if crd is None:
            return f"{module}@{mversion} defines no kind {kind} in group {group}"
        served = sorted(v for v, d in crd["versions"].items() if d["served"])
        if version not in served:
            return f"CRD {crd['crd']} from {module}@{mversion} does not serve {version} (served: {served})"
        root = crd["versions"][version]["schema"]  # already strict() (at extraction)
        root.setdefault("properties", {})
        for meta in ("apiVersion", "kind"):
            root["properties"].setdefault(meta, {"type": "string"})
        root["properties"].setdefault("metadata", {"type": "object"})
        validator = jsonschema.Draft4Validator(root)
        self._validators[key] = validator
        return validator

    def describe(self, group: str, kind: str) -> str:
        source = self.source_of(group)
        if source is None:
            return ""
        module, version = self.module(source)
        crd = self.crd(source, group, kind)
        return f"CRD {crd['crd'] if crd else '?'} from {module}@{version}"


def _known_groups() -> str:
    return ", ".join(sorted(g for s in SOURCES for g in s.groups))


def strict(schema: Any) -> Any:
    """The schema as the apiserver applies it: unknown fields rejected unless preserved, nullable honoured."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    raw = ("enum", "required", "example", "default", "properties")
    out = {k: v if k in raw else strict(v) for k, v in schema.items()}
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    embedded = schema.get("x-kubernetes-embedded-resource") is True
    if embedded:
        props = out.setdefault("properties", {})
        for meta in ("apiVersion", "kind"):
            props.setdefault(meta, {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def field_path(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(the object)"


def findings(schemas: Schemas, env: str, documents: list[tuple[str, dict[str, Any]]]) -> list[Finding]:
    """Findings for every custom resource of `documents` ((file name, object) pairs of one dist/ folder)."""
    out = []
    for file, obj in documents:
        api_version = str(obj.get("apiVersion", ""))
        group, _, version = api_version.rpartition("/")
        if is_builtin(group):
            continue
        kind = str(obj.get("kind", ""))
        meta = obj.get("metadata") or {}
        ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))

        finding = functools.partial(Finding, env, RULE, file, kind, ns, name, "jsonschema")
        validator = schemas.validator(group, kind, version)
        if isinstance(validator, str):
            out.append(
                finding(
                    f"{api_version} {kind}: {validator}. Fix: use a kind and version the pinned CRDs serve"
                )
            )
            continue
        errors = sorted(validator.iter_errors(obj), key=lambda e: (field_path(e.absolute_path), e.message))
        origin = schemas.describe(group, kind)
        for err in errors:
            for path, message in _explain(err):
                out.append(
                    finding(
                        f"{field_path(path)}: {message} (schema of {origin}, {version})."
                        " Fix: set the field as the operator's CRD defines it",
                        field=tuple(path),
                    )
                )
    return out


def _explain(err: Any) -> list[tuple[list[str | int], str]]:
    """(field path, what is wrong) for one schema error; an unknown field is named by its own path."""
    path: list[str | int] = list(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted((err.schema.get("properties") or {}).keys())
        shown = ", ".join(allowed[:12]) + (", ..." if len(allowed) > 12 else "")
        extra = sorted(k for k in err.instance if k not in allowed)
        return [([*path, k], f"unknown field; allowed here: {shown}") for k in extra]
    message = err.message if len(err.message) <= 240 else err.message[:237] + "..."
    return [(path, message)]
