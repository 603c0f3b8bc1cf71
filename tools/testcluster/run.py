"""The whole cluster test: every dist/ folder applied, every workload at its maximum admitted, every inference
Deployment booted, then the platform's add-ons as Argo CD would apply them (dist/infrastructure/<cluster>/
rendered from their pinned modules) with the cluster policies in place. Used by `python -m testcluster` and by
the pytest suite (tests/tools/testcluster/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from addons.collect import INFRASTRUCTURE, render_all
from policy_check.dist import environments  # dist/<env>, or dist/<env>/<cluster> of each cluster
from testcluster import boot
from testcluster.apply import (
    ExpectedWarning,
    FolderResult,
    Manifest,
    apply_folder,
    apply_manifests,
    ensure_namespace,
    expected_warnings,
    load_folder,
)
from testcluster.kubeapi import Kube
from testcluster.workloads import plan, scale_to_max

#: Folders of dist/ that are not environments; they are applied after every environment.
ARGOCD = "argocd"
CLUSTER_POLICIES = "cluster-policies"


@dataclass
class EnvironmentResult:
    folder: FolderResult
    pods: dict[str, int] = field(default_factory=dict)  # workload label -> pods admitted
    booted: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return self.folder.failures


def check_environment(
    kube: Kube, folder: Path, *, expected: list[ExpectedWarning], boot_check: bool = True
) -> EnvironmentResult:
    result = EnvironmentResult(folder=apply_folder(kube, folder, expected))
    if result.folder.failures:
        return result  # a rejected object: the workloads below would fail for that reason alone
    workloads = plan(result.folder.applied)
    result.folder.failures += scale_to_max(kube, workloads)
    result.pods = {w.manifest.label: w.expected_pods for w in workloads}
    if boot_check and not result.folder.failures:
        booted, failures = boot.boot_environment(load_folder(folder))
        result.booted = booted
        result.folder.failures += failures
    return result


def check_operator_folder(kube: Kube, folder: Path, *, expected: list[ExpectedWarning]) -> FolderResult:
    """dist/argocd/ and dist/cluster-policies/: their namespaces come with the operator's own install."""
    for manifest in load_folder(folder):
        namespace = manifest.obj.get("metadata", {}).get("namespace")
        if namespace:
            ensure_namespace(kube, namespace)
    return apply_folder(kube, folder, expected)


def check_addons(kube: Kube, dist: Path, *, expected: list[ExpectedWarning]) -> list[FolderResult]:
    """Each cluster's add-ons as Argo CD applies them (CreateNamespace, then the objects and the Helm hooks
    it runs as sync hooks), and their operators' pods admitted. Applied last: the operators' webhooks and
    aggregated APIs point at pods that do not run here, so nothing is created after them."""
    results = []
    for cluster, renders in render_all(dist).items():
        manifests = []
        for r in renders:
            ensure_namespace(kube, r.namespace)
            where = dist / INFRASTRUCTURE / cluster / f"{r.application} (rendered)"
            manifests += [Manifest(path=where, obj=obj) for obj in [*r.objects, *r.hooks]]
        label = f"{INFRASTRUCTURE}/{cluster}: {len(renders)} add-ons rendered"
        result = apply_manifests(kube, label, manifests, expected)
        if not result.failures:
            result.failures += scale_to_max(kube, plan(result.applied))
        results.append(result)
    return results


def check_dist(
    kube: Kube, dist: Path, *, boot_check: bool = True
) -> tuple[list[EnvironmentResult], list[FolderResult]]:
    expected = expected_warnings()
    envs = [
        check_environment(kube, dist / name, expected=expected, boot_check=boot_check)
        for name in environments(dist)
    ]
    others = [
        check_operator_folder(kube, dist / name, expected=expected)
        for name in (ARGOCD, CLUSTER_POLICIES)
        if (dist / name).is_dir()
    ]
    if (dist / INFRASTRUCTURE).is_dir():
        others += check_addons(kube, dist, expected=expected)
    return envs, others


def summary(envs: list[EnvironmentResult], others: list[FolderResult]) -> list[str]:
    lines = []
    for env in envs:
        pods = sum(env.pods.values())
        each = ", ".join(f"{label.split(': ', 1)[1]} {n}" for label, n in sorted(env.pods.items()))
        booted = f"; booted {', '.join(env.booted)}" if env.booted else ""
        lines.append(
            f"{env.folder.folder}: {len(env.folder.applied)} objects applied, "
            f"{pods} pods admitted at maximum scale ({each}){booted}"
        )
    for other in others:
        lines.append(f"{other.folder}: {len(other.applied)} objects applied")
    return lines
