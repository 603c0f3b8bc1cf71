"""tools/versions.env, the one place for versions, and the Go modules that carry CRDs."""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from testcluster.errors import ClusterTestError

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS_FILE = REPO_ROOT / "tools" / "versions.env"


@cache
def versions() -> dict[str, str]:
    """KEY=VALUE lines of tools/versions.env (comments and blank lines skipped)."""
    found: dict[str, str] = {}
    for line in VERSIONS_FILE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        found[key.strip()] = shlex.split(value)[0] if value.strip() else ""
    return found


def pinned(key: str) -> str:
    try:
        return versions()[key]
    except KeyError:
        raise ClusterTestError(f"{VERSIONS_FILE}: no {key}=...; add it (see the other entries)") from None


@dataclass(frozen=True)
class CrdSource:
    """Where one project's CRDs live: a folder inside its Go module at a pinned version."""

    project: str
    module_key: str  # e.g. KEDA_MODULE in tools/versions.env
    version_key: str
    folders: tuple[str, ...]
    purpose: str

    @property
    def module(self) -> str:
        return pinned(self.module_key)

    @property
    def version(self) -> str:
        return pinned(self.version_key)


CRD_SOURCES: tuple[CrdSource, ...] = (
    CrdSource(
        "Gateway API",
        "GATEWAY_API_MODULE",
        "GATEWAY_API_VERSION",
        ("config/crd/standard",),
        "HTTPRoute routing (prod's weighted canary)",
    ),
    CrdSource(
        "External Secrets",
        "EXTERNAL_SECRETS_MODULE",
        "EXTERNAL_SECRETS_VERSION",
        ("config/crds/bases",),
        "ExternalSecret: the Redis password and API keys, never a Secret in git",
    ),
    CrdSource(
        "KEDA", "KEDA_MODULE", "KEDA_VERSION", ("config/crd/bases",), "ScaledObject: prod's autoscaler"
    ),
    CrdSource(
        "Prometheus Operator",
        "PROMETHEUS_OPERATOR_MODULE",
        "PROMETHEUS_OPERATOR_VERSION",
        ("example/prometheus-operator-crd",),
        "ServiceMonitor: scraping the inference service",
    ),
    CrdSource(
        "Argo CD",
        "ARGOCD_MODULE",
        "ARGOCD_VERSION",
        ("manifests/crds",),
        "Application, AppProject: dist/argocd/",
    ),
    CrdSource(
        "KServe",
        "KSERVE_MODULE",
        "KSERVE_VERSION",
        ("config/crd/full",),
        "InferenceService: each service with `runtime: kserve` (the CRD only: no KServe controller runs)",
    ),
    CrdSource(
        "Knative Serving",
        "KNATIVE_SERVING_MODULE",
        "KNATIVE_SERVING_VERSION",
        ("config/core/300-resources",),
        "Service, Configuration, Revision, Route: what KServe makes of each service with `runtime: "
        "kserve-serverless` (installed beside KServe's CRD in its test; no Knative controller runs)",
    ),
    # istio.io/api keeps every Istio CRD (15, of four API groups) in one multi-document file, the only file of
    # kubernetes/; install_crds applies only the (group, kind) pairs dist/ uses, so the rest stay out.
    CrdSource(
        "Istio",
        "ISTIO_API_MODULE",
        "ISTIO_API_VERSION",
        ("kubernetes",),
        "PeerAuthentication, AuthorizationPolicy: environments with `mesh: istio`",
    ),
    CrdSource(
        "Kyverno",
        "KYVERNO_MODULE",
        "KYVERNO_VERSION",
        ("config/crds",),
        "the admission policies of dist/cluster-policies/",
    ),
)


@cache
def module_dir(module: str, version: str) -> Path:
    """The folder of MODULE@VERSION in the Go module cache (downloaded on first use)."""
    script = REPO_ROOT / "tools" / "setup" / "go-module-dir.sh"
    proc = subprocess.run([str(script), module, version], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ClusterTestError(
            proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"{script} failed"
        )
    return Path(proc.stdout.strip())


def crd_files(source: CrdSource) -> list[Path]:
    """Every CRD manifest of one source, sorted (kustomization.yaml files are Kustomize's, not CRDs).

    A file may hold several CRDs (Istio's one file holds them all): callers read each with load_all and pick
    the CustomResourceDefinition documents by (group, kind).
    """
    root = module_dir(source.module, source.version)
    files: list[Path] = []
    for folder in source.folders:
        base = root / folder
        if not base.is_dir():
            raise ClusterTestError(
                f"{source.module}@{source.version} has no {folder}/; check {source.module_key}"
            )
        files += [p for p in base.rglob("*.yaml") if p.name != "kustomization.yaml"]
    return sorted(files)


@cache
def gitops_engine_kind_order() -> tuple[str, ...]:
    """Argo CD's apply order of built-in kinds, read from the gitops-engine source its pinned module uses.

    Read from Argo CD's own dependency rather than written down here, so the test orders a sync the way the
    pinned Argo CD does (kinds not listed, custom resources, come after all of these).
    """
    argocd = module_dir(pinned("ARGOCD_MODULE"), pinned("ARGOCD_VERSION"))
    engine_version = None
    for line in (argocd / "go.mod").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "github.com/argoproj/gitops-engine":
            engine_version = parts[1]
    if engine_version is None:
        raise ClusterTestError(f"{argocd}/go.mod does not require github.com/argoproj/gitops-engine")
    source = (
        module_dir("github.com/argoproj/gitops-engine", engine_version) / "pkg" / "sync" / "sync_tasks.go"
    )
    text = source.read_text(encoding="utf-8")
    start = text.index("kinds := []string{")
    body = text[start : text.index("}", start)]
    kinds = [
        json.loads(tok.strip().rstrip(",")) for tok in body.splitlines()[1:] if tok.strip().startswith('"')
    ]
    if "Namespace" not in kinds or "Deployment" not in kinds:
        raise ClusterTestError(f"could not read the kind order from {source}")
    return tuple(kinds)
