"""dist/argocd/: AppProject, an Application per environment, cluster-policies Application(s), the root app."""

from __future__ import annotations

import re
from typing import Any

from constructs import Construct
from mlplatform import labels
from mlplatform.components.base import ManifestChart, metadata
from mlplatform.spec import Environment
from mlplatform.spec.platform import Platform

API = "argoproj.io/v1alpha1"
IN_CLUSTER = "https://kubernetes.default.svc"
POLICIES_NAMESPACE = "kyverno"
ARGOCD_DIR = "argocd"
POLICIES_DIR = "cluster-policies"
CLUSTER_SCOPED = (
    ("", "Namespace"),
    ("kyverno.io", "ClusterPolicy"),
    ("policies.kyverno.io", "ValidatingPolicy"),
)
#: Every namespaced kind the environments may contain (a test checks the rendered output against it).
NAMESPACED_KINDS = (
    ("", "ConfigMap"),
    ("", "LimitRange"),
    ("", "PersistentVolumeClaim"),
    ("", "ResourceQuota"),
    ("", "Service"),
    ("", "ServiceAccount"),
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("external-secrets.io", "ExternalSecret"),
    ("gateway.networking.k8s.io", "HTTPRoute"),
    ("keda.sh", "ScaledObject"),
    ("kyverno.io", "PolicyException"),  # dist/cluster-policies: waivers, in the kyverno namespace
    ("monitoring.coreos.com", "ServiceMonitor"),
    ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("policies.kyverno.io", "PolicyException"),
    ("policy", "PodDisruptionBudget"),
)


def _cluster_label(server: str) -> str:
    if server.rstrip("/") == IN_CLUSTER:
        return "in-cluster"
    host = re.sub(r"^https?://", "", server).split("/")[0].split(":")[0]
    return re.sub(r"[^a-z0-9]+", "-", host.lower()).strip("-")


def argocd_manifests(platform: Platform, envs: list[Environment]) -> list[dict[str, Any]]:
    argo = platform.argocd
    repo = str(argo.repo_url)
    common = labels.common(platform=platform.name, name=platform.name, component="gitops")

    def meta(name: str, wave: str) -> dict[str, Any]:
        return metadata(name=name, namespace=argo.namespace, labels=common, wave=wave)

    servers = sorted({str(e.overlay.cluster.server) for e in envs})
    destinations = [{"server": str(e.overlay.cluster.server), "namespace": e.namespace} for e in envs]
    destinations += [{"server": s, "namespace": POLICIES_NAMESPACE} for s in servers]
    project = {
        "apiVersion": API,
        "kind": "AppProject",
        "metadata": meta(argo.project, "-1"),
        "spec": {
            "description": f"{platform.name}: ML inference platform environments and their cluster policies",
            "sourceRepos": [repo],
            "destinations": sorted(destinations, key=lambda d: (d["server"], d["namespace"])),
            "clusterResourceWhitelist": [{"group": g, "kind": k} for g, k in CLUSTER_SCOPED],
            "namespaceResourceWhitelist": [{"group": g, "kind": k} for g, k in NAMESPACED_KINDS],
        },
    }
    manifests = [project]
    for env in envs:
        sync: dict[str, Any] = {}
        if env.overlay.sync.mode == "automated":
            sync["automated"] = {"prune": True, "selfHeal": True}
        sync["syncOptions"] = ["PruneLast=true", "ApplyOutOfSyncOnly=true"]
        spec: dict[str, Any] = {
            "project": argo.project,
            "source": {"repoURL": repo, "targetRevision": argo.target_revision, "path": f"dist/{env.name}"},
            "destination": {"server": str(env.overlay.cluster.server), "namespace": env.namespace},
            "syncPolicy": sync,
        }
        ignore = [
            {
                "group": "apps",
                "kind": "Deployment",
                "name": name,
                "namespace": env.namespace,
                "jsonPointers": ["/spec/replicas"],
            }
            for name, svc in env.overlay.services.items()
            if svc.autoscaling is not None
        ]
        if ignore:
            spec["ignoreDifferences"] = ignore
        manifests.append(
            {
                "apiVersion": API,
                "kind": "Application",
                "metadata": meta(f"{platform.name}-{env.name}", "0"),
                "spec": spec,
            }
        )
    for server in servers:
        manifests.append(
            {
                "apiVersion": API,
                "kind": "Application",
                "metadata": meta(f"{platform.name}-cluster-policies-{_cluster_label(server)}", "-1"),
                "spec": {
                    "project": argo.project,
                    "source": {
                        "repoURL": repo,
                        "targetRevision": argo.target_revision,
                        "path": f"dist/{POLICIES_DIR}",
                    },
                    "destination": {"server": server, "namespace": POLICIES_NAMESPACE},
                    "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
                },
            }
        )
    manifests.append(
        {
            "apiVersion": API,
            "kind": "Application",
            "metadata": meta(f"{platform.name}-root", "0"),
            "spec": {
                "project": "default",
                "source": {
                    "repoURL": repo,
                    "targetRevision": argo.target_revision,
                    "path": f"dist/{ARGOCD_DIR}",
                },
                "destination": {"server": IN_CLUSTER, "namespace": argo.namespace},
                "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
            },
        }
    )
    return manifests


class ArgoCdChart(ManifestChart):
    """The Argo CD objects that deploy every environment (app of apps)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        platform: Platform,
        envs: list[Environment],
    ) -> None:
        super().__init__(scope, id)
        for manifest in argocd_manifests(platform, envs):
            self.add_manifest(manifest)
        self.include_manifests()
