"""dist/infrastructure/<cluster>/: the platform's add-ons, one Argo CD Application per operator a cluster's
environments need, each pinned to the version tools/versions.env records (the same versions the CRD checks
and imports/ use).

The layout follows fluxcd/flux2-kustomize-helm-example's infrastructure -> apps split: the root (dist/argocd/)
holds one `<platform>-infrastructure-<cluster>` Application per cluster in a wave before the cluster policies
and the environments, and argocd-cm's Application health check makes that wave wait until every add-on is
Healthy. Within a cluster's folder Kyverno comes last: once its webhooks exist every pod creation passes
through it, so the other operators start first.

Choices (README "The platform's add-ons"):
- each add-on comes from its project's own release channel: the Helm chart repository (cert-manager, External
  Secrets, Kyverno), the OCI chart (Envoy Gateway) or the git tag's kustomization (KEDA, whose images the
  Application pins to the tag, and the Prometheus Operator's bundle);
- a cluster gets exactly the add-ons its environments use (`needed`), less `infrastructure.exclude`; Kyverno
  always, since dist/cluster-policies/ goes to every cluster;
- no resources finalizer and no automated prune: deleting an add-on's Application, or an upgrade that drops
  an object, must never delete an operator or its CRDs (and with them every custom resource of every team);
- ServerSideApply: the operators' CRDs are larger than client-side apply's last-applied annotation allows;
- values from the spec: Kyverno's policy exceptions on, in the namespace the waivers' PolicyExceptions go to;
  the Prometheus Operator in `infrastructure.monitoringNamespace`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplatform_crds.io import argoproj as argo

from constructs import Construct
from mlplatform import names
from mlplatform.components.base import Meta, PlatformChart
from mlplatform.names import POLICIES_NAMESPACE
from mlplatform.schema import Environment
from mlplatform.schema.platform import Platform

INFRASTRUCTURE_DIR = "infrastructure"
#: The pins of the repository this generator is part of (a spec copied elsewhere still uses them).
VERSIONS_FILE = Path(__file__).resolve().parents[2] / "tools" / "versions.env"
SYNC_OPTIONS = ["CreateNamespace=true", "ServerSideApply=true"]
#: Within a cluster's folder: the operators, then Kyverno (its webhooks see every pod created after it).
OPERATORS_WAVE, POLICY_ENGINE_WAVE = "0", "1"


def load_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """tools/versions.env as KEY -> value (the Makefile and tools/setup/*.sh read the same file)."""
    versions = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            versions[key.strip()] = value.strip()
    return versions


Source = Callable[[Platform, dict[str, str]], argo.ApplicationSpecSource]


@dataclass(frozen=True)
class Addon:
    name: str
    namespace: Callable[[Platform], str]
    source: Source
    needed: Callable[[Environment], bool]
    wave: str = OPERATORS_WAVE
    #: Namespaces besides its own that its manifests write to (KEDA: a RoleBinding in kube-system).
    extra_namespaces: tuple[str, ...] = ()


def _chart(repo: str, chart: str, version_key: str, values: Callable[[Platform], dict[str, Any]]) -> Source:
    def source(platform: Platform, versions: dict[str, str]) -> argo.ApplicationSpecSource:
        helm = argo.ApplicationSpecSourceHelm(release_name=chart, values_object=values(platform) or None)
        return argo.ApplicationSpecSource(
            repo_url=repo, chart=chart, target_revision=versions[version_key], helm=helm
        )

    return source


def _oci_chart(url: str, release: str, version_key: str) -> Source:
    def source(platform: Platform, versions: dict[str, str]) -> argo.ApplicationSpecSource:
        helm = argo.ApplicationSpecSourceHelm(release_name=release)
        return argo.ApplicationSpecSource(
            repo_url=url, path=".", target_revision=versions[version_key], helm=helm
        )

    return source


def _keda(platform: Platform, versions: dict[str, str]) -> argo.ApplicationSpecSource:
    """KEDA's own kustomization at its tag names the images `:main`; the release (and this Application) pins
    them to the tag, as `kustomize edit set image` does."""
    tag = versions["KEDA_VERSION"].removeprefix("v")
    images = [
        f"ghcr.io/kedacore/{name}:{tag}"
        for name in ("keda", "keda-admission-webhooks", "keda-metrics-apiserver")
    ]
    return argo.ApplicationSpecSource(
        repo_url="https://github.com/kedacore/keda.git",
        path="config/default",
        target_revision=versions["KEDA_VERSION"],
        kustomize=argo.ApplicationSpecSourceKustomize(images=images),
    )


def _prometheus_operator(platform: Platform, versions: dict[str, str]) -> argo.ApplicationSpecSource:
    """The project's bundle.yaml (its root kustomization), moved out of `default` into the monitoring
    namespace."""
    return argo.ApplicationSpecSource(
        repo_url="https://github.com/prometheus-operator/prometheus-operator.git",
        path=".",
        target_revision=versions["PROMETHEUS_OPERATOR_VERSION"],
        kustomize=argo.ApplicationSpecSourceKustomize(namespace=platform.infrastructure.monitoring_namespace),
    )


def _kyverno_values(platform: Platform) -> dict[str, Any]:
    # The waivers become PolicyExceptions in dist/cluster-policies/ (POLICIES_NAMESPACE): Kyverno honours
    # exceptions only where this feature is on, and only from that namespace.
    exceptions = {"enabled": True, "namespace": POLICIES_NAMESPACE}
    # Its kyverno-api subchart (the policies.kyverno.io CRDs) renders `labels: {}` and `annotations: {}` by
    # default; the apiserver stores no empty map, so Argo CD would call those CRDs OutOfSync forever (seen in
    # make argocd-test). Both get a value that means something: the CRDs are never deleted by Argo CD, even
    # if someone turns pruning on (deleting one deletes every policy of its kind, cluster-wide).
    api = {
        "labels": {"app.kubernetes.io/part-of": "kyverno"},
        "annotations": {"argocd.argoproj.io/sync-options": "Delete=false"},
    }
    return {"features": {"policyExceptions": exceptions}, "kyverno-api": api}


def _uses_keda(env: Environment) -> bool:
    overlay = env.overlay
    scaled = any(
        s.autoscaling is not None and s.autoscaling.engine == "keda" for s in overlay.services.values()
    )
    return scaled or overlay.jobs.enabled


ADDONS = (
    Addon(
        "cert-manager",
        lambda p: "cert-manager",
        # CRDs with the chart (kept when the chart goes: crds.keep is the chart's own default)
        _chart(
            "https://charts.jetstack.io",
            "cert-manager",
            "CERT_MANAGER_VERSION",
            lambda p: {"crds": {"enabled": True}},
        ),
        lambda e: e.overlay.routing.kind == "Ingress",  # the Ingresses' cert-manager.io/cluster-issuer
    ),
    Addon(
        "envoy-gateway",
        lambda p: "envoy-gateway-system",
        _oci_chart(
            "oci://registry-1.docker.io/envoyproxy/gateway-helm", "envoy-gateway", "ENVOY_GATEWAY_VERSION"
        ),
        lambda e: e.overlay.routing.kind == "Gateway",
    ),
    Addon(
        "external-secrets",
        lambda p: "external-secrets",
        _chart(
            "https://charts.external-secrets.io",
            "external-secrets",
            "EXTERNAL_SECRETS_CHART_VERSION",
            lambda p: {},
        ),
        lambda e: True,  # every environment's Redis password and API keys are ExternalSecrets
    ),
    Addon("keda", lambda p: "keda", _keda, _uses_keda, extra_namespaces=("kube-system",)),
    Addon(
        "prometheus-operator",
        lambda p: p.infrastructure.monitoring_namespace,
        _prometheus_operator,
        lambda e: e.overlay.features.service_monitor,
    ),
    Addon(
        "kyverno",
        lambda p: POLICIES_NAMESPACE,
        _chart("https://kyverno.github.io/kyverno/", "kyverno", "KYVERNO_CHART_VERSION", _kyverno_values),
        lambda e: True,  # dist/cluster-policies/ goes to every cluster
        wave=POLICY_ENGINE_WAVE,
    ),
)


def addons_of(platform: Platform, envs: list[Environment]) -> list[Addon]:
    """The add-ons a cluster needs: those its environments use, less the spec's `exclude`."""
    if not platform.infrastructure.enabled:
        return []
    return [
        a for a in ADDONS if a.name not in platform.infrastructure.exclude and any(a.needed(e) for e in envs)
    ]


def clusters(envs: list[Environment]) -> dict[str, list[Environment]]:
    """Each destination cluster's name (names.cluster_label of its server) -> the environments on it."""
    found: dict[str, list[Environment]] = {}
    for env in envs:
        found.setdefault(names.cluster_label(env.server), []).append(env)
    return dict(sorted(found.items()))


def source_repos(platform: Platform, envs: list[Environment], versions: dict[str, str]) -> list[str]:
    """Every repository the add-ons come from (the infrastructure AppProject's sourceRepos)."""
    return sorted(
        {
            str(a.source(platform, versions).repo_url)
            for on_cluster in clusters(envs).values()
            for a in addons_of(platform, on_cluster)
        }
    )


class InfrastructureChart(PlatformChart):
    """dist/infrastructure/<cluster>/: one Application per add-on the cluster's environments need."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        platform: Platform,
        server: str,
        envs: list[Environment],
        versions: dict[str, str],
        retry: argo.ApplicationSpecSyncPolicyRetry,
    ) -> None:
        super().__init__(scope, id)
        cluster = names.cluster_label(server)
        labels = names.common(platform=platform.name, name=platform.name, component="infrastructure")
        for addon in addons_of(platform, envs):
            meta = Meta(namespace=platform.argocd.namespace, labels=labels, wave=addon.wave)
            name = names.addon_application(platform.name, addon.name, cluster)
            spec = argo.ApplicationSpec(
                project=names.infrastructure_project(platform.name),
                source=addon.source(platform, versions),
                destination=argo.ApplicationSpecDestination(
                    server=server, namespace=addon.namespace(platform)
                ),
                sync_policy=argo.ApplicationSpecSyncPolicy(
                    automated=argo.ApplicationSpecSyncPolicyAutomated(prune=False, self_heal=True),
                    retry=retry,
                    sync_options=SYNC_OPTIONS,
                ),
            )
            argo.Application(self, name, metadata=meta.api(name), spec=spec)
