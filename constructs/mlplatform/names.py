"""Every object name, label and selector the platform writes: derived here and nowhere else.

Names are what people type (`kubectl get deploy inference-canary`) and what other objects point at (a
Service's selector, an HTTPRoute's backend, a volume's Secret). Deriving each in one place keeps the
pointers and the pointees in step. Labels and selectors are readable and stable, never derived from
construct paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

#: The jobs Redis's component name, and what a service's job worker adds to the service's name.
JOBS_REDIS = "jobs-redis"
WORKER_SUFFIX = "-worker"
NAME = "app.kubernetes.io/name"
PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "app.kubernetes.io/managed-by"
COMPONENT = "app.kubernetes.io/component"
TRACK = "track"  # stable | canary: which version of a service a pod runs
MANAGER = "cdk8s"
#: Set on every Namespace the platform manages. The cluster policies (dist/cluster-policies/) select
#: namespaces by this label only, so they never touch other teams' namespaces.
MANAGED_NAMESPACE = "mlplatform.io/managed"
MANAGED_NAMESPACE_VALUE = "true"
# On the Application of an environment that runs on several clusters: which cluster, and its region.
CLUSTER = "mlplatform.io/cluster"
REGION = "mlplatform.io/region"
#: Set by the apiserver on every Namespace, immutable: the cluster policies name protected namespaces by it.
NAMESPACE_NAME = "kubernetes.io/metadata.name"
#: Where Kyverno runs; the PolicyExceptions of dist/cluster-policies/ go there.
POLICIES_NAMESPACE = "kyverno"
#: Set by the StatefulSet controller on each of its pods.
STATEFULSET_POD_NAME = "statefulset.kubernetes.io/pod-name"

Track = Literal["stable", "canary"]
STABLE: Track = "stable"
CANARY: Track = "canary"

#: Per-namespace objects with fixed names.
RESOURCE_QUOTA = "compute"
LIMIT_RANGE = "container-defaults"
DEFAULT_DENY = "default-deny"
ALLOW_DNS = "allow-dns"
REDIS_REPLICATION = "allow-redis-replication"
#: The name of the Redis cache (its StatefulSet, client Service, ServiceAccount and pods' name label).
REDIS = "redis"
REDIS_HEADLESS = f"{REDIS}-headless"
REDIS_CONFIG = f"{REDIS}-config"
REDIS_AUTH = f"{REDIS}-auth"
REDIS_PRIMARY_POD = f"{REDIS}-0"  # the StatefulSet's first pod
#: The jobs Redis (queue and quota counters; persistent, noeviction; its name `JOBS_REDIS` is the spec's
#: component name): the same objects as the cache's under its own names.
JOBS_REDIS_HEADLESS = f"{JOBS_REDIS}-headless"
JOBS_REDIS_CONFIG = f"{JOBS_REDIS}-config"
JOBS_REDIS_AUTH = f"{JOBS_REDIS}-auth"
JOBS_REDIS_PRIMARY_POD = f"{JOBS_REDIS}-0"
#: The KEDA TriggerAuthentication that gives the redis-streams scaler the jobs Redis's password.
JOBS_REDIS_TRIGGER_AUTH = f"{JOBS_REDIS}-scaler"


def common(*, platform: str, name: str, component: str | None = None) -> dict[str, str]:
    """Labels every object of a component carries."""
    labels = {NAME: name, PART_OF: platform, MANAGED_BY: MANAGER}
    if component:
        labels[COMPONENT] = component
    return labels


def select(name: str) -> dict[str, str]:
    """The selector of every pod of a component (used by NetworkPolicies, PDBs, ServiceMonitors)."""
    return {NAME: name}


def allow_to(source: str, target: str) -> str:
    """The NetworkPolicy that lets `source` open connections to `target` (egress side)."""
    return f"allow-{source}-to-{target}"


def allow_from(target: str, source: str) -> str:
    """The NetworkPolicy that lets `target` accept connections from `source` (ingress side)."""
    return f"allow-{target}-from-{source}"


#: The mesh's namespace-wide objects: Istio applies a PeerAuthentication named `default` to the whole
#: namespace, and an AuthorizationPolicy with an empty spec allows nothing (the deny-all the ALLOWs sit on).
MESH_MTLS = "default"
MESH_DENY_ALL = "deny-all"
ALLOW_ISTIOD = "allow-istiod"
#: The namespace label that has Istio inject its sidecar into every pod.
MESH_INJECTION = {"istio-injection": "enabled"}


def service_account_of(component: str, services: Iterable[str]) -> str:
    """The ServiceAccount a component's pods run as: a service's versions as the service's, its job worker
    as the worker's; the cache and the jobs Redis as their own name."""
    for service in services:
        svc = ServiceNames(service)
        if component == service:
            return svc.service_account
        if component == svc.worker:
            return svc.worker_service_account
    return component


def allow_model_sources(service: str) -> str:
    """The NetworkPolicy that lets `service` fetch models from OCI registries or https:// URLs (443)."""
    return f"allow-{service}-to-model-sources"


def allow_oidc_jwks(service: str) -> str:
    """The NetworkPolicy that lets `service` fetch its OIDC issuer's JWKS by URL (overlay CIDRs, 443)."""
    return f"allow-{service}-to-oidc-jwks"


@dataclass(frozen=True, slots=True)
class Version:
    """One version (track) of one model service: its Deployment, Service, ConfigMap and pod selector."""

    service: str
    track: Track

    @property
    def name(self) -> str:
        """Deployment and Service name: the service's own name for stable, `<service>-canary` for canary."""
        return self.service if self.track == STABLE else f"{self.service}-{self.track}"

    @property
    def config(self) -> str:
        return f"{self.name}-config"

    @property
    def identity(self) -> str:
        """The ConfigMap with the version's access policy (`access-policy.json`), where identity is set."""
        return f"{self.name}-identity"

    @property
    def predictor(self) -> str:
        """The predictor Service KServe makes for this version's InferenceService (`runtime: kserve`)."""
        return f"{self.name}-predictor"

    @property
    def selector(self) -> dict[str, str]:
        return {NAME: self.service, TRACK: self.track}


@dataclass(frozen=True, slots=True)
class ServiceNames:
    """Every name one model service's objects use."""

    service: str

    @property
    def stable(self) -> Version:
        return Version(self.service, STABLE)

    @property
    def canary(self) -> Version:
        return Version(self.service, CANARY)

    @property
    def service_account(self) -> str:
        """The ServiceAccount both versions' pods run as."""
        return self.service

    @property
    def worker_service_account(self) -> str:
        """The ServiceAccount the job worker's pods run as (an identity apart from the API's)."""
        return self.worker

    @property
    def api_keys(self) -> str:
        """The API-key Secret (made by its ExternalSecret of the same name)."""
        return f"{self.service}-api-keys"

    @property
    def metrics_token(self) -> str:
        """The scraper's /metrics token Secret (made by its ExternalSecret of the same name)."""
        return f"{self.service}-metrics-token"

    @property
    def model_cache(self) -> str:
        return f"{self.service}-model-cache"

    @property
    def oidc_jwks(self) -> str:
        """The Secret (and its ExternalSecret) with the issuer's JWKS, where the overlay's JWKS is one."""
        return f"{self.service}-oidc-jwks"

    @property
    def worker(self) -> str:
        """The job worker's Deployment, ConfigMap prefix, ScaledObject, PDB and pods' name label."""
        return f"{self.service}{WORKER_SUFFIX}"

    @property
    def worker_config(self) -> str:
        return f"{self.worker}-config"

    @property
    def jobs_prefix(self) -> str:
        """The service's keys in the jobs Redis (INFERENCE_JOBS_PREFIX): its own stream, consumer group,
        dead letters and job records, so that its worker only ever takes its own models' jobs."""
        return f"jobs-{self.service}"

    @property
    def jobs_stream(self) -> str:
        """The stream the service queues job ids on and its worker's ScaledObject measures."""
        return f"{self.jobs_prefix}:stream"

    @property
    def tls(self) -> str:
        """The TLS Secret cert-manager fills for the service's Ingress."""
        return f"{self.service}-tls"

    @property
    def grpc_route(self) -> str:
        """The service's external gRPC route (a GRPCRoute, or an Ingress of its own: nginx's backend
        protocol holds for a whole Ingress)."""
        return f"{self.service}-grpc"

    @property
    def grpc_tls(self) -> str:
        """The TLS Secret cert-manager fills for the gRPC Ingress's host."""
        return f"{self.service}-grpc-tls"


def environment_application(platform: str, env: str, cluster: str | None = None) -> str:
    """The Application of an environment (on one of its clusters, where it runs on several)."""
    return f"{platform}-{env}" if cluster is None else f"{platform}-{env}-{cluster}"


#: The API server address of the cluster Argo CD runs in.
IN_CLUSTER = "https://kubernetes.default.svc"


def cluster_label(server: str) -> str:
    """A cluster's API server address as a name part: `in-cluster`, or its host with `-` for the rest."""
    if server.rstrip("/") == IN_CLUSTER:
        return "in-cluster"
    host = re.sub(r"^https?://", "", server).split("/")[0].split(":")[0]
    return re.sub(r"[^a-z0-9]+", "-", host.lower()).strip("-")


def policies_application(platform: str, server: str) -> str:
    """The Application that syncs dist/cluster-policies/ to the cluster at `server`."""
    return f"{platform}-cluster-policies-{cluster_label(server)}"


def infrastructure_application(platform: str, server: str) -> str:
    """The Application that syncs dist/infrastructure/<cluster>/ (that cluster's add-ons' Applications)."""
    return f"{platform}-infrastructure-{cluster_label(server)}"


def addon_application(platform: str, addon: str, cluster: str) -> str:
    """One add-on (an operator) on one cluster."""
    return f"{platform}-addon-{addon}-{cluster}"


def infrastructure_project(platform: str) -> str:
    """The AppProject of the add-ons: upstream sources, operator-wide permissions; apart from the
    environments' project, which allows only this repository and the kinds the environments ship."""
    return f"{platform}-infrastructure"


def root_application(platform: str) -> str:
    return f"{platform}-root"


def dist_path(folder: str) -> str:
    """Where Argo CD reads a dist/ folder in this repository."""
    return f"dist/{folder}"
