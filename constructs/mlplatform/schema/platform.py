"""`overlays/platform.yaml`: what every environment shares."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from mlplatform.names import JOBS_REDIS, WORKER_SUFFIX
from mlplatform.runtime_contract import HTTP_PORT_NAME, INFERENCE_PORT, REDIS_PORT, REDIS_PORT_NAME
from mlplatform.schema.common import (
    DnsLabel,
    Duration,
    ImageRepository,
    SecretRef,
    Strict,
    matching,
    seconds,
)
from mlplatform.schema.errors import FieldPath, FieldProblems, unknown
from mlplatform.schema.signing import ImageSigning

VERSION_PATTERN = r"^[0-9]+$"


class Backoff(Strict):
    """How long Argo CD waits before trying a failed sync again: `duration`, times `factor` after each try,
    never more than `maxDuration`."""

    duration: Duration = "5s"
    factor: int = Field(default=2, ge=1, le=10)
    max_duration: Duration = "3m"

    @model_validator(mode="after")
    def _max_covers_first(self) -> Backoff:
        if seconds(self.max_duration) < seconds(self.duration):
            raise FieldProblems(
                [
                    (
                        ("maxDuration",),
                        f"{self.max_duration!r} is shorter than duration {self.duration!r}; "
                        "allowed: at least the first wait",
                    )
                ]
            )
        return self


class Retry(Strict):
    """`syncPolicy.retry` of every Application: a failed sync (e.g. a CRD that arrives after the objects that
    use it) is tried again `limit` times with backoff, instead of waiting for the next commit."""

    limit: int = Field(default=5, ge=1, le=50)
    backoff: Backoff = Backoff()


class ArgoCd(Strict):
    """Where Argo CD reads this repository from and where its own objects live, and how it retries."""

    repo_url: Annotated[
        str, matching(r"^(https://|ssh://|git@)[^\s]+$", "a git URL: https://..., ssh://... or git@...")
    ]
    target_revision: str = Field(min_length=1)
    namespace: DnsLabel = "argocd"
    project: DnsLabel
    retry: Retry = Retry()


#: The platform's add-ons: the operators dist/ needs, an Argo CD Application each (mlplatform.infrastructure).
AddonName = Literal[
    "cert-manager", "envoy-gateway", "external-secrets", "keda", "kyverno", "prometheus-operator"
]


class Infrastructure(Strict):
    """dist/infrastructure/<cluster>/: the operators each cluster's environments need, installed by Argo CD
    in the root's waves before the environments. A cluster gets the add-ons its environments use."""

    enabled: bool = True
    #: Add-ons the clusters already run, installed by other means: not rendered (README "What the cluster
    #: needs" says what each one provides).
    exclude: list[AddonName] = Field(default_factory=list)
    #: Where the Prometheus Operator runs (the Prometheus servers it manages, and the metrics-scraper peer,
    #: usually live there too).
    monitoring_namespace: DnsLabel = "monitoring"


class Peer(Strict):
    """A workload outside the platform's namespaces (ingress controller, metrics scraper).

    `serviceAccount`: the ServiceAccount it runs as, its identity on a service mesh; required where an
    environment with `mesh: istio` renders a connection from it (its AuthorizationPolicy names the principal).
    """

    namespace: DnsLabel
    pod_labels: dict[str, str] = Field(min_length=1)
    service_account: DnsLabel | None = None


def _version_from_number(value: Any) -> Any:
    """`version: 2` in YAML is the version "2"."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Model(Strict):
    name: DnsLabel
    version: Annotated[
        str, matching(VERSION_PATTERN, "a version number such as 1"), BeforeValidator(_version_from_number)
    ]


class Tuning(Strict):
    """INFERENCE_* tuning settings; an overlay may override any of them."""

    cache_ttl_seconds: int | None = Field(default=None, ge=0)
    max_batch_size: int | None = Field(default=None, ge=1)
    max_batch_wait_ms: int | None = Field(default=None, ge=0)
    ort_intra_op_threads: int | None = Field(default=None, ge=1)
    execution_providers: list[str] | None = None


class Service(Strict):
    """A model-serving service; runs the inference service image with the given models."""

    image: ImageRepository
    models: list[Model] = Field(min_length=1)
    use_cache: bool = True
    api_keys: SecretRef
    #: The scraper's bearer token for /metrics (whose labels name the models): needed where an overlay turns
    #: features.serviceMonitor on; without it /metrics answers 401 to everyone.
    metrics_token: SecretRef | None = None
    #: Also serve the Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, grpc.health.v1) on
    #: port 8081, named `grpc`, in the same process (runtime `deployment`; KServe's runtime stays HTTP). Only
    #: connections that say `grpc: true` may reach it.
    grpc: bool = True
    tuning: Tuning = Tuning()


class Redis(Strict):
    """The shared Redis cache."""

    image: ImageRepository
    maxmemory_policy: Literal[
        "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-ttl"
    ] = "allkeys-lru"
    password: SecretRef


class Jobs(Strict):
    """The jobs Redis (same image as the cache; digest and sizes per overlay): where its password is kept."""

    password: SecretRef


class Connection(Strict):
    """`from` may open connections to `to` on the target's port; names are services, `redis` or peers."""

    source: DnsLabel = Field(alias="from")
    target: DnsLabel = Field(alias="to")
    #: The connection may use the target service's gRPC port (8081) as well as its HTTP port.
    grpc: bool = False


class Platform(Strict):
    """The whole platform.yaml."""

    name: DnsLabel
    argocd: ArgoCd
    infrastructure: Infrastructure = Infrastructure()
    peers: dict[DnsLabel, Peer] = Field(default_factory=dict)
    redis: Redis
    jobs: Jobs | None = None
    services: dict[DnsLabel, Service] = Field(min_length=1)
    connections: list[Connection] = Field(default_factory=list)
    #: The key that signs every image (schema/signing.py); required: admission verifies every image with it.
    image_signing: ImageSigning
    #: The order builds move through the environments (`make promote`), e.g. [dev, stage, prod].
    promotion: list[DnsLabel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_names(self) -> Platform:
        problems: list[tuple[FieldPath, str]] = []
        for i, env in enumerate(self.promotion):
            if env in self.promotion[:i]:
                twice = f"{env!r} is listed twice; allowed: each environment once"
                problems.append((("promotion", i), twice))
        for name in sorted(self.own_components() & set(self.peers)):
            problems.append((("peers", name), f"peer {name!r} reuses a component name; allowed: a new name"))
        if "redis" in self.services:
            problems.append((("services", "redis"), "'redis' is the cache's name; allowed: another name"))
        for name in sorted(set(self.services) & self.job_components()):
            problems.append(
                (("services", name), f"{name!r} is a jobs component's name; allowed: another name")
            )
        problems += self._check_connections()
        for name, svc in sorted(self.services.items()):
            if svc.use_cache and not any(c.source == name and c.target == "redis" for c in self.connections):
                problems.append(
                    (
                        ("services", name, "useCache"),
                        f"true, but connections has no edge from {name!r} to 'redis'; "
                        f"allowed: add `- {{from: {name}, to: redis}}` or useCache: false",
                    )
                )
        if problems:
            raise FieldProblems(problems)
        return self

    def _check_connections(self) -> list[tuple[FieldPath, str]]:
        problems: list[tuple[FieldPath, str]] = []
        components = sorted(self.component_names())
        seen: dict[tuple[str, str], int] = {}
        for i, conn in enumerate(self.connections):
            for side, name in (("from", conn.source), ("to", conn.target)):
                if name not in components:
                    problems.append(
                        (
                            ("connections", i, side),
                            unknown("component", name, components),
                        )
                    )
            if conn.target in self.peers:
                problems.append(
                    (
                        ("connections", i, "to"),
                        f"{conn.target!r} is an external peer; allowed: a service or 'redis'",
                    )
                )
            if conn.source == conn.target:
                problems.append(
                    (("connections", i), f"{conn.source!r} connects to itself; allowed: two components")
                )
            if conn.grpc and not (conn.target in self.services and self.services[conn.target].grpc):
                problems.append(
                    (
                        ("connections", i, "grpc"),
                        f"true, but {conn.target!r} serves no gRPC; allowed: a service whose `grpc` is true",
                    )
                )
            edge = (conn.source, conn.target)
            if edge in seen:
                problems.append(
                    (("connections", i), f"duplicate of connections[{seen[edge]}] {edge}; allowed: once")
                )
            seen.setdefault(edge, i)
        return problems

    def own_components(self) -> set[str]:
        """The platform's own workloads: services, the cache, the jobs Redis and each service's job worker."""
        return set(self.services) | {"redis"} | self.job_components()

    def job_components(self) -> set[str]:
        """What exists only where an overlay enables jobs (connections with them are rendered only there)."""
        return {JOBS_REDIS} | {f"{name}{WORKER_SUFFIX}" for name in self.services}

    def component_names(self) -> set[str]:
        return self.own_components() | set(self.peers)

    def port_of(self, component: str) -> tuple[str, int]:
        """The named port a component accepts connections on."""
        if component in ("redis", JOBS_REDIS):
            return REDIS_PORT_NAME, REDIS_PORT
        return HTTP_PORT_NAME, INFERENCE_PORT
