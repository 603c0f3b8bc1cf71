"""dist/argocd/: AppProject, an Application per environment, cluster-policies Application(s), the root app.

The classes are made by `cdk8s import` from the pinned Argo CD CRDs (imports/mlplatform_crds/io/argoproj).
"""

from __future__ import annotations

from mlplatform_crds.io import argoproj as argo

from constructs import Construct
from mlplatform import names
from mlplatform.components.base import Meta, PlatformChart
from mlplatform.names import IN_CLUSTER, POLICIES_NAMESPACE
from mlplatform.spec import Environment
from mlplatform.spec.platform import Platform

ARGOCD_DIR = "argocd"
POLICIES_DIR = "cluster-policies"
CLUSTER_SCOPED = (
    ("", "Namespace"),
    ("kyverno.io", "ClusterPolicy"),
    ("policies.kyverno.io", "ValidatingPolicy"),
    ("policies.kyverno.io", "ImageValidatingPolicy"),
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
    ("gateway.networking.k8s.io", "GRPCRoute"),
    ("gateway.networking.k8s.io", "HTTPRoute"),
    ("keda.sh", "ScaledObject"),
    ("keda.sh", "TriggerAuthentication"),
    ("kyverno.io", "PolicyException"),  # dist/cluster-policies: waivers, in the kyverno namespace
    ("monitoring.coreos.com", "ServiceMonitor"),
    ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("policies.kyverno.io", "PolicyException"),
    ("policy", "PodDisruptionBudget"),
)
#: Added to the AppProject only where an environment has `runtime: kserve` (only the kinds we ship).
KSERVE_KINDS = (("serving.kserve.io", "InferenceService"),)


AUTOMATED = argo.ApplicationSpecSyncPolicy(
    automated=argo.ApplicationSpecSyncPolicyAutomated(prune=True, self_heal=True)
)


def _source(platform: Platform, folder: str) -> argo.ApplicationSpecSource:
    repo, revision = platform.argocd.repo_url, platform.argocd.target_revision
    return argo.ApplicationSpecSource(
        repo_url=str(repo), target_revision=revision, path=names.dist_path(folder)
    )


def project_spec(platform: Platform, envs: list[Environment]) -> argo.AppProjectSpec:
    """Only this repository, only the environments' namespaces (and Kyverno's), only the kinds we ship."""
    servers = sorted({str(e.overlay.cluster.server) for e in envs})
    kserve = any(e.overlay.runtime == "kserve" for e in envs)
    destinations = [(str(e.overlay.cluster.server), e.namespace) for e in envs]
    destinations += [(s, POLICIES_NAMESPACE) for s in servers]
    return argo.AppProjectSpec(
        description=f"{platform.name}: ML inference platform environments and their cluster policies",
        source_repos=[str(platform.argocd.repo_url)],
        destinations=[
            argo.AppProjectSpecDestinations(server=s, namespace=n) for s, n in sorted(destinations)
        ],
        cluster_resource_whitelist=[
            argo.AppProjectSpecClusterResourceWhitelist(group=g, kind=k) for g, k in CLUSTER_SCOPED
        ],
        namespace_resource_whitelist=[
            argo.AppProjectSpecNamespaceResourceWhitelist(group=g, kind=k)
            for g, k in sorted({*NAMESPACED_KINDS, *(KSERVE_KINDS if kserve else ())})
        ],
    )


def environment_spec(platform: Platform, env: Environment) -> argo.ApplicationSpec:
    """dist/<env>/ into its namespace; the replica count of autoscaled Deployments is the autoscaler's."""
    automated = env.overlay.sync.mode == "automated"
    sync = argo.ApplicationSpecSyncPolicy(
        automated=AUTOMATED.automated if automated else None,
        sync_options=["PruneLast=true", "ApplyOutOfSyncOnly=true"],
    )
    ignore = [
        argo.ApplicationSpecIgnoreDifferences(
            group="apps",
            kind="Deployment",
            name=names.ServiceNames(name).stable.name,
            namespace=env.namespace,
            json_pointers=["/spec/replicas"],
        )
        for name, svc in env.overlay.services.items()
        if svc.autoscaling is not None
    ]
    if env.overlay.jobs.enabled:  # each service's job worker: KEDA owns its replica count
        ignore += [
            argo.ApplicationSpecIgnoreDifferences(
                group="apps",
                kind="Deployment",
                name=names.ServiceNames(name).worker,
                namespace=env.namespace,
                json_pointers=["/spec/replicas"],
            )
            for name in env.overlay.services
        ]
    return argo.ApplicationSpec(
        project=platform.argocd.project,
        source=_source(platform, env.name),
        destination=argo.ApplicationSpecDestination(
            server=str(env.overlay.cluster.server), namespace=env.namespace
        ),
        sync_policy=sync,
        ignore_differences=ignore or None,
    )


class ArgoCdChart(PlatformChart):
    """The Argo CD objects that deploy every environment (app of apps)."""

    def __init__(self, scope: Construct, id: str, *, platform: Platform, envs: list[Environment]) -> None:
        super().__init__(scope, id)
        common = names.common(platform=platform.name, name=platform.name, component="gitops")
        meta = Meta(namespace=platform.argocd.namespace, labels=common, wave="0")
        first = meta.at("-1")
        argo.AppProject(
            self, "project", metadata=first.api(platform.argocd.project), spec=project_spec(platform, envs)
        )
        for env in envs:
            name = names.environment_application(platform.name, env.name)
            argo.Application(self, name, metadata=meta.api(name), spec=environment_spec(platform, env))
        for server in sorted({str(e.overlay.cluster.server) for e in envs}):
            name = names.policies_application(platform.name, server)
            destination = argo.ApplicationSpecDestination(server=server, namespace=POLICIES_NAMESPACE)
            spec = argo.ApplicationSpec(
                project=platform.argocd.project,
                source=_source(platform, POLICIES_DIR),
                destination=destination,
                sync_policy=AUTOMATED,
            )
            argo.Application(self, name, metadata=first.api(name), spec=spec)
        root = names.root_application(platform.name)
        spec = argo.ApplicationSpec(
            project="default",
            source=_source(platform, ARGOCD_DIR),
            destination=argo.ApplicationSpecDestination(
                server=IN_CLUSTER, namespace=platform.argocd.namespace
            ),
            sync_policy=AUTOMATED,
        )
        argo.Application(self, root, metadata=meta.api(root), spec=spec)
