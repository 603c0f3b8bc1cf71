"""What every construct shares: the chart it adds objects to, sync waves, the restricted security contexts."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import cdk8s

from constructs import Construct

WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"
#: Sync waves: namespace, quotas and network policies first, then secrets and Redis, then the services.
WAVE_NAMESPACE = "0"
WAVE_DATA = "1"
WAVE_SERVICES = "2"
NO_PRUNE = {"argocd.argoproj.io/sync-options": "Prune=false"}


class ManifestChart(cdk8s.Chart):
    """A cdk8s Chart whose constructs hand it plain manifests; cdk8s makes them ApiObjects in one batch.

    Why a batch: each Python -> Node call through jsii costs about 0.22 ms here, and an `ApiObject` with a
    body takes three (create, `JsonPatch.add`, `add_json_patch`): 48 ms per added model service. One
    `cdk8s.Include` per chart hands cdk8s every manifest at once; it parses them, makes one `ApiObject` each,
    and renders and writes them like any other. Measured by bench/synth_bench.py (numbers in the README).
    Other cdk8s constructs (cdk8s-plus, imported CRDs) can still be added; they synthesize alongside.
    """

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id, disable_resource_name_hashes=True)
        self._manifests: list[dict[str, Any]] = []
        self._included = False

    def add_manifest(self, manifest: dict[str, Any]) -> None:
        if self._included:
            raise RuntimeError(f"chart {self.node.id}: its manifests were already handed to cdk8s")
        self._manifests.append(manifest)

    def include_manifests(self) -> None:
        """Hand every added manifest to cdk8s (call once, when the chart is complete, before synthesis)."""
        if self._included:
            return
        self._included = True
        if not self._manifests:
            return
        with tempfile.TemporaryDirectory(prefix="mlplatform-") as tmp:
            path = Path(tmp) / "manifests.json"
            # JSON documents are YAML documents; cdk8s.Include reads them with its YAML 1.1 loader.
            documents = (json.dumps(m, separators=(",", ":")) for m in self._manifests)
            path.write_text("\n---\n".join(documents) + "\n")
            cdk8s.Include(self, "manifests", url=str(path))


class Component(Construct):
    """One concern of a `ManifestChart` (a direct child of it, or of another Component)."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        if isinstance(scope, ManifestChart):
            self._chart = scope
        elif isinstance(scope, Component):
            self._chart = scope._chart
        else:
            raise TypeError(f"{type(self).__name__} {id!r} must be created inside a ManifestChart")

    def emit(self, manifest: dict[str, Any]) -> None:
        """Add one Kubernetes object, given as a plain dict, to this component's chart."""
        self._chart.add_manifest(manifest)


def metadata(
    *,
    name: str,
    labels: dict[str, str],
    namespace: str | None,
    wave: str,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Object metadata; `namespace=None` for cluster-scoped kinds."""
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict(labels)
    meta["annotations"] = {WAVE_ANNOTATION: wave, **(annotations or {})}
    return meta


def pod_security_context(uid: int) -> dict[str, Any]:
    """Pod-level restricted settings: fixed non-root UID/GID, fsGroup for volumes, seccomp RuntimeDefault."""
    return {
        "fsGroup": uid,
        "fsGroupChangePolicy": "OnRootMismatch",
        "runAsGroup": uid,
        "runAsNonRoot": True,
        "runAsUser": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(uid: int) -> dict[str, Any]:
    """Container-level restricted settings (Pod Security Standard `restricted`, plus a read-only root)."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsGroup": uid,
        "runAsNonRoot": True,
        "runAsUser": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def service_account(*, name: str, namespace: str, labels: dict[str, str], wave: str) -> dict[str, Any]:
    """A ServiceAccount whose token is never mounted automatically."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(name=name, namespace=namespace, labels=labels, wave=wave),
        "automountServiceAccountToken": False,
    }
