"""Install the CRDs, apply dist/ folder by folder in the order Argo CD syncs, and judge every response."""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testcluster.errors import ClusterTestError
from testcluster.kubeapi import Kube
from testcluster.versions import CRD_SOURCES, REPO_ROOT, crd_files, gitops_engine_kind_order

WAVE = "argocd.argoproj.io/sync-wave"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML 1.1's safe loader; a bare `=` (YAML 1.1's "value" type, in CRD enums) reads as a string."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def load_all(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=_Loader))


EXPECTED_WARNINGS = Path(__file__).with_name("expected-warnings.yaml")


@dataclass(frozen=True)
class Manifest:
    path: Path
    obj: dict[str, Any]

    @property
    def label(self) -> str:
        meta = self.obj.get("metadata", {})
        where = f"{meta['namespace']}/" if meta.get("namespace") else ""
        return f"{rel(self.path)}: {self.obj.get('kind')} {where}{meta.get('name')}"


@dataclass
class FolderResult:
    folder: str
    applied: list[Manifest] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # expected ones, with their reason


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def load_folder(folder: Path) -> list[Manifest]:
    """Every object in the folder's .yaml/.yml/.json files, as Argo CD reads a plain directory."""
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".yaml", ".yml", ".json") or not path.is_file():
            continue
        for doc in load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc:
                found.append(Manifest(path=path, obj=doc))
    return found


def wave_of(m: Manifest) -> int:
    """The manifest's Argo CD sync wave (0 when it names none)."""
    annotations = m.obj.get("metadata", {}).get("annotations") or {}
    try:
        return int(annotations.get(WAVE, "0"))
    except ValueError:
        raise ClusterTestError(f"{m.label}: {WAVE} must be an integer, got {annotations[WAVE]!r}") from None


def sync_order(manifests: list[Manifest]) -> list[Manifest]:
    """Argo CD's order: wave, then kind (gitops-engine's list; custom resources last), then name."""
    kinds = gitops_engine_kind_order()  # read once per process (cached)
    order = {kind: i - len(kinds) for i, kind in enumerate(kinds)}

    def key(m: Manifest) -> tuple[int, int, str]:
        return (wave_of(m), order.get(str(m.obj.get("kind")), 0), str(m.obj["metadata"].get("name")))

    return sorted(manifests, key=key)


def sync_waves(manifests: list[Manifest]) -> list[list[Manifest]]:
    """The manifests in sync_order, split into their waves (Argo CD applies a wave only once every resource
    of the waves before it is healthy)."""
    return [list(wave) for _, wave in itertools.groupby(sync_order(manifests), key=wave_of)]


@dataclass(frozen=True)
class ExpectedWarning:
    pattern: re.Pattern[str]
    reason: str


def expected_warnings() -> list[ExpectedWarning]:
    """tools/testcluster/expected-warnings.yaml: each warning the apiserver may give, with why it is fine."""
    data = yaml.safe_load(EXPECTED_WARNINGS.read_text(encoding="utf-8")) or {}
    entries = []
    for i, entry in enumerate(data.get("warnings") or []):
        if not entry.get("reason"):
            raise ClusterTestError(
                f"{rel(EXPECTED_WARNINGS)}: warnings[{i}] has no reason; every entry needs one"
            )
        entries.append(ExpectedWarning(pattern=re.compile(entry["match"]), reason=entry["reason"]))
    return entries


def kinds_in(dist: Path) -> set[tuple[str, str]]:
    """(API group, kind) of every object in every folder of a dist/ tree."""
    found = set()
    for folder in sorted(p for p in dist.iterdir() if p.is_dir()):
        for m in load_folder(folder):
            group = str(m.obj.get("apiVersion", "")).rpartition("/")[0]
            found.add((group, str(m.obj.get("kind"))))
    return found


def install_crds(kube: Kube, kinds: set[tuple[str, str]] | None = None, timeout_s: float = 60.0) -> int:
    """Apply the pinned projects' CRDs (those of `kinds` only, if given) and wait until they are served.

    Installing only what dist/ uses keeps the apiserver's OpenAPI rebuilds few: all 69 CRDs of the six
    projects took about 47 s to apply on this 2-core machine, the handful dist/ uses a few seconds.
    """
    names = []
    for source in CRD_SOURCES:
        for path in crd_files(source):
            for doc in load_all(path.read_text(encoding="utf-8")):
                if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                    continue
                if kinds is not None and (doc["spec"]["group"], doc["spec"]["names"]["kind"]) not in kinds:
                    continue
                result = kube.apply(doc)
                if not result.ok:
                    raise ClusterTestError(f"installing {path.name} from {source.module}: {result.message}")
                names.append(doc["metadata"]["name"])
    deadline = time.monotonic() + timeout_s
    pending = set(names)
    while pending:
        for name in sorted(pending):
            crd = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, name)
            conditions = (crd or {}).get("status", {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            raise ClusterTestError(
                f"CRDs not established after {timeout_s:.0f} s: {', '.join(sorted(pending))}"
            )
        if pending:
            time.sleep(0.2)
    kube.discover()
    return len(names)


def ensure_namespace(kube: Kube, name: str) -> None:
    """A namespace that an operator's own install creates (e.g. argocd), not one the platform defines."""
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def apply_folder(kube: Kube, folder: Path, expected: list[ExpectedWarning]) -> FolderResult:
    return apply_manifests(kube, rel(folder), load_folder(folder), expected)


def apply_manifests(
    kube: Kube, label: str, manifests: list[Manifest], expected: list[ExpectedWarning]
) -> FolderResult:
    """Apply in Argo CD's order; every rejection and every unexpected warning is a failure."""
    result = FolderResult(folder=label)
    for manifest in sync_order(manifests):
        applied = kube.apply(manifest.obj)
        if not applied.ok:
            result.failures.append(f"{manifest.label}: rejected: {applied.message}")
            continue
        result.applied.append(manifest)
        for warning in applied.warnings:
            known = next((e for e in expected if e.pattern.search(warning)), None)
            if known is None:
                result.failures.append(f"{manifest.label}: warning: {warning}")
            else:
                result.warnings.append(f"{manifest.label}: {warning} (expected: {known.reason})")
    return result
