"""dist/argocd/: AppProjects, an Application per environment, cluster-policies Application(s), the add-ons'
Application per cluster (dist/infrastructure/<cluster>/, mlplatform.infrastructure), the root app, and what
this platform needs from Argo CD's own configuration (the argocd-cm patch).

The classes are made by `cdk8s import` from the pinned Argo CD CRDs (imports/mlplatform_crds/io/argoproj).

Choices (README "Argo CD"):
- every Application retries a failed sync with backoff (the spec's `argocd.retry`): a CRD that arrives after
  the objects using it fails one sync, not every sync until the next commit;
- the children carry the resources finalizer: deleting one deletes what it deployed, except what is marked
  Delete=false (the namespaces and the data claims, components.base.KEEP). The root carries none: deleting
  it must not take every environment with it;
- argocd-cm's Lua health checks (constructs/mlplatform/health/) make an Application report its own health, so
  the root's sync waves wait for the children of the wave before, and judge the operators' kinds we ship. A
  person applies the patch once with the root (the bootstrap); the root then keeps it as git says, in the
  first wave (-3), so the checks are in place before the children they judge;
- the root's waves: argocd-cm and the add-ons' AppProject (-3), each cluster's add-ons (-2), the
  environments' AppProject and the cluster policies (-1, they need Kyverno's CRDs), the environments (0);
- an environment's sync windows (overlays/<env>.yaml `sync.windows`) become the AppProject's syncWindows,
  matched to that environment's Application.
"""

from __future__ import annotations

from importlib import resources

from cdk8s_plus_33 import k8s
from mlplatform_crds.io import argoproj as argo

from constructs import Construct
from mlplatform import names
from mlplatform.components.base import WAVE_ANNOTATION, Meta, PlatformChart
from mlplatform.infrastructure import INFRASTRUCTURE_DIR, addons_of, clusters, source_repos
from mlplatform.names import IN_CLUSTER, POLICIES_NAMESPACE
from mlplatform.schema import Environment
from mlplatform.schema.overlay import KSERVE_RUNTIMES
from mlplatform.schema.platform import Platform

ARGOCD_DIR = "argocd"
#: The argocd-cm patch's wave in the root: before the add-ons (-2), the AppProject and the children (-1, 0).
CONFIG_WAVE = "-3"
INFRASTRUCTURE_WAVE = "-2"
#: Argo CD's resources finalizer with its propagation policy spelled out; the bare name draws an apiserver
#: warning (a finalizer name should hold a path).
RESOURCES_FINALIZER = "resources-finalizer.argocd.argoproj.io/foreground"
#: The Lua health checks, one file per kind: `<group>_<Kind>.lua` (Argo CD's resource.customizations key).
HEALTH_CHECKS = "health"
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
#: Added only where an environment has `mesh: istio`.
MESH_KINDS = (("security.istio.io", "AuthorizationPolicy"), ("security.istio.io", "PeerAuthentication"))


AUTOMATED = argo.ApplicationSpecSyncPolicyAutomated(prune=True, self_heal=True)


def retry(platform: Platform) -> argo.ApplicationSpecSyncPolicyRetry:
    spec = platform.argocd.retry
    backoff = argo.ApplicationSpecSyncPolicyRetryBackoff(
        duration=spec.backoff.duration, factor=spec.backoff.factor, max_duration=spec.backoff.max_duration
    )
    return argo.ApplicationSpecSyncPolicyRetry(limit=spec.limit, backoff=backoff)


def automated(platform: Platform) -> argo.ApplicationSpecSyncPolicy:
    return argo.ApplicationSpecSyncPolicy(automated=AUTOMATED, retry=retry(platform))


def _source(platform: Platform, folder: str) -> argo.ApplicationSpecSource:
    repo, revision = platform.argocd.repo_url, platform.argocd.target_revision
    return argo.ApplicationSpecSource(
        repo_url=str(repo), target_revision=revision, path=names.dist_path(folder)
    )


def project_spec(platform: Platform, envs: list[Environment]) -> argo.AppProjectSpec:
    """Only this repository, only the environments' namespaces (and Kyverno's), only the kinds we ship."""
    servers = sorted({e.server for e in envs})
    kserve = any(e.overlay.runtime in KSERVE_RUNTIMES for e in envs)
    mesh = any(e.overlay.mesh == "istio" for e in envs)
    destinations = [(e.server, e.namespace) for e in envs]
    destinations += [(s, POLICIES_NAMESPACE) for s in servers]
    windows = [
        argo.AppProjectSpecSyncWindows(
            kind=w.kind,
            schedule=w.schedule,
            duration=w.duration,
            time_zone=w.time_zone,
            manual_sync=w.manual_sync,
            applications=apps,
        )
        for apps, e in _by_environment(platform, envs)
        for w in e.overlay.sync.windows
    ]
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
            for g, k in sorted(
                {*NAMESPACED_KINDS, *(KSERVE_KINDS if kserve else ()), *(MESH_KINDS if mesh else ())}
            )
        ],
        sync_windows=windows or None,
    )


def _by_environment(platform: Platform, envs: list[Environment]) -> list[tuple[list[str], Environment]]:
    """(the Applications of each environment, one per cluster, and its first cluster's Environment): an
    environment's sync windows hold for all its clusters."""
    apps: dict[str, list[str]] = {}
    first: dict[str, Environment] = {}
    for e in envs:
        apps.setdefault(e.name, []).append(names.environment_application(platform.name, e.name, e.cluster))
        first.setdefault(e.name, e)
    return [(apps[name], first[name]) for name in apps]


def placement_labels(env: Environment) -> dict[str, str]:
    """The cluster (and its region) of an environment that runs on several; none for one cluster."""
    if env.cluster is None:
        return {}
    return {names.CLUSTER: env.cluster, **({names.REGION: env.region} if env.region else {})}


def environment_spec(platform: Platform, env: Environment) -> argo.ApplicationSpec:
    """dist/<env>/ (dist/<env>/<cluster>/) into its namespace on its cluster; the replica count of autoscaled
    Deployments is the autoscaler's."""
    sync = argo.ApplicationSpecSyncPolicy(
        automated=AUTOMATED if env.overlay.sync.mode == "automated" else None,
        retry=retry(platform),
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
        source=_source(platform, env.folder),
        destination=argo.ApplicationSpecDestination(server=env.server, namespace=env.namespace),
        sync_policy=sync,
        ignore_differences=ignore or None,
    )


def infrastructure_project_spec(
    platform: Platform, envs: list[Environment], versions: dict[str, str]
) -> argo.AppProjectSpec:
    """The add-ons' project: their upstream repositories and this one, each cluster's add-on namespaces (and
    the Applications' own namespace in the cluster Argo CD runs in). Operators install CRDs, ClusterRoles and
    webhooks, so every cluster-scoped kind is allowed here, and only here."""
    destinations = {(IN_CLUSTER, platform.argocd.namespace)}
    for on_cluster in clusters(envs).values():
        server = on_cluster[0].server
        for addon in addons_of(platform, on_cluster):
            destinations |= {(server, ns) for ns in (addon.namespace(platform), *addon.extra_namespaces)}
    return argo.AppProjectSpec(
        description=f"{platform.name}: the operators the environments need (dist/infrastructure/)",
        source_repos=sorted({str(platform.argocd.repo_url), *source_repos(platform, envs, versions)}),
        destinations=[
            argo.AppProjectSpecDestinations(server=s, namespace=n) for s, n in sorted(destinations)
        ],
        cluster_resource_whitelist=[argo.AppProjectSpecClusterResourceWhitelist(group="*", kind="*")],
    )


class ArgoCdChart(PlatformChart):
    """The Argo CD objects that deploy every environment (app of apps)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        platform: Platform,
        envs: list[Environment],
        versions: dict[str, str],
    ) -> None:
        super().__init__(scope, id)
        common = names.common(platform=platform.name, name=platform.name, component="gitops")
        meta = Meta(namespace=platform.argocd.namespace, labels=common, wave="0")
        first = meta.at("-1")
        self._infrastructure(platform, envs, versions, meta)
        argo.AppProject(
            self, "project", metadata=first.api(platform.argocd.project), spec=project_spec(platform, envs)
        )

        def child(name: str, at: Meta, spec: argo.ApplicationSpec) -> None:
            metadata = at.api(name, finalizers=[RESOURCES_FINALIZER])
            argo.Application(self, name, metadata=metadata, spec=spec)

        for env in envs:
            name = names.environment_application(platform.name, env.name, env.cluster)
            child(name, meta.labelled(placement_labels(env)), environment_spec(platform, env))
        for server in sorted({e.server for e in envs}):
            name = names.policies_application(platform.name, server)
            destination = argo.ApplicationSpecDestination(server=server, namespace=POLICIES_NAMESPACE)
            spec = argo.ApplicationSpec(
                project=platform.argocd.project,
                source=_source(platform, POLICIES_DIR),
                destination=destination,
                sync_policy=automated(platform),
            )
            child(name, first, spec)
        root = names.root_application(platform.name)
        spec = argo.ApplicationSpec(
            project="default",
            source=_source(platform, ARGOCD_DIR),
            destination=argo.ApplicationSpecDestination(
                server=IN_CLUSTER, namespace=platform.argocd.namespace
            ),
            sync_policy=automated(platform),
        )
        argo.Application(self, root, metadata=meta.api(root), spec=spec)
        ArgoCdConfig(self, "argocd-cm", platform=platform)

    def _infrastructure(
        self, platform: Platform, envs: list[Environment], versions: dict[str, str], meta: Meta
    ) -> None:
        """The add-ons' AppProject, and per cluster one Application that syncs dist/infrastructure/<cluster>/
        (no resources finalizer: deleting one leaves the add-ons' Applications, and they their operators)."""
        infrastructure = [(c, on) for c, on in clusters(envs).items() if addons_of(platform, on)]
        if not infrastructure:
            return
        project = names.infrastructure_project(platform.name)
        spec = infrastructure_project_spec(platform, envs, versions)
        argo.AppProject(self, project, metadata=meta.at(CONFIG_WAVE).api(project), spec=spec)
        for cluster, on_cluster in infrastructure:
            name = names.infrastructure_application(platform.name, on_cluster[0].server)
            app = argo.ApplicationSpec(
                project=project,
                source=_source(platform, f"{INFRASTRUCTURE_DIR}/{cluster}"),
                destination=argo.ApplicationSpecDestination(
                    server=IN_CLUSTER, namespace=platform.argocd.namespace
                ),
                sync_policy=automated(platform),
            )
            argo.Application(self, name, metadata=meta.at(INFRASTRUCTURE_WAVE).api(name), spec=app)


def health_checks() -> dict[str, str]:
    """argocd-cm keys (`resource.customizations.health.<group>_<Kind>`) -> Lua, from the health/ files."""
    folder = resources.files("mlplatform") / HEALTH_CHECKS
    scripts = sorted((p for p in folder.iterdir() if p.name.endswith(".lua")), key=lambda p: p.name)
    return {
        f"resource.customizations.health.{p.name.removesuffix('.lua')}": p.read_text("utf-8") for p in scripts
    }


class ArgoCdConfig(Construct):
    """The argocd-cm patch: only the keys this platform needs, on Argo CD's own ConfigMap (`kubectl apply`
    and Argo CD's sync merge them into the install's argocd-cm and leave its other keys alone)."""

    def __init__(self, scope: Construct, id: str, *, platform: Platform) -> None:
        super().__init__(scope, id)
        k8s.KubeConfigMap(
            self,
            "argocd-cm",
            metadata=k8s.ObjectMeta(
                name="argocd-cm",
                namespace=platform.argocd.namespace,
                annotations={WAVE_ANNOTATION: CONFIG_WAVE},
                # Argo CD reads only ConfigMaps labelled part-of=argocd (as its install labels argocd-cm).
                labels={
                    "app.kubernetes.io/managed-by": "cdk8s",
                    "app.kubernetes.io/name": "argocd-cm",
                    "app.kubernetes.io/part-of": "argocd",
                },
            ),
            data=health_checks(),
        )
