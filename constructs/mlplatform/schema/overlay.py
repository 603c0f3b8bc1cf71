"""`overlays/<env>.yaml`: what differs per environment."""

from __future__ import annotations

import re
import zoneinfo
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic.alias_generators import to_camel

from mlplatform import runtime_contract
from mlplatform.schema.common import (
    AbsolutePath,
    Digest,
    DnsLabel,
    Duration,
    Hostname,
    Quantity,
    Resources,
    Strict,
    matching,
    seconds,
)
from mlplatform.schema.errors import FieldPath, FieldProblems
from mlplatform.schema.identity import Identity
from mlplatform.schema.platform import Model, Tuning

Server = Annotated[
    str,
    matching(
        r"^https://[a-z0-9.-]+(:[0-9]+)?(/[^\s]*[^\s/])?$",
        "the API server's https:// URL, e.g. https://kubernetes.default.svc (no trailing /)",
    ),
]


class Cluster(Strict):
    """The Argo CD destination."""

    server: Server


class ServiceInCluster(Strict):
    """What one cluster of an environment changes of a service; unset: the environment's value."""

    host: Hostname | None = None
    grpc_host: Hostname | None = None
    replicas: int | None = Field(default=None, ge=1)
    #: the autoscaler's bounds in this cluster (the service must autoscale)
    min_replicas: int | None = Field(default=None, ge=1)
    max_replicas: int | None = Field(default=None, ge=1)


class Placement(Strict):
    """One of the clusters an environment runs on, and what differs there (README "One environment on
    several clusters")."""

    server: Server
    #: where the cluster is, e.g. eu-west-1: the `mlplatform.io/region` label of its Argo CD Application
    region: DnsLabel | None = None
    #: the StorageClass of every volume claim here (Redis, the jobs Redis, PVC-delivered models)
    storage_class: DnsLabel | None = None
    services: dict[DnsLabel, ServiceInCluster] = Field(default_factory=dict)


#: A cron schedule's five fields (minute hour day-of-month month day-of-week) and the values each allows.
CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("weekday", 0, 6),
)
_CRON_PART = re.compile(r"^(\*|([0-9]+)(-([0-9]+))?)(/([1-9][0-9]*))?$")


def cron_problem(schedule: str) -> str | None:
    """Why `schedule` is not a five-field cron schedule of numbers, ranges, lists and steps (None: it is)."""
    fields = schedule.split()
    if len(fields) != len(CRON_FIELDS):
        return f"{schedule!r} has {len(fields)} fields; allowed: 5 (minute hour day-of-month month weekday)"
    for text, (what, low, high) in zip(fields, CRON_FIELDS, strict=True):
        for part in text.split(","):
            found = _CRON_PART.match(part)
            if found is None:
                return f"{schedule!r}: {what} {text!r}; allowed: *, n, n-m, lists and /steps"
            numbers = [int(n) for n in (found.group(2), found.group(4)) if n is not None]
            if any(not low <= n <= high for n in numbers) or numbers != sorted(numbers):
                return f"{schedule!r}: {what} {text!r}; allowed: {low}-{high}, ranges low-high"
    return None


class SyncWindow(Strict):
    """An Argo CD sync window (the AppProject's `syncWindows`, matched to this environment's Application).

    `allow`: syncs run only while some allow window is open; `deny`: no sync while it is open. Outside an
    allow window even a manual sync is refused unless `manualSync` is true (default false: the safe choice).
    `schedule` is when a window opens (cron, in `timeZone`), `duration` how long it stays open.
    """

    kind: Literal["allow", "deny"] = "allow"
    schedule: str
    duration: Duration
    time_zone: str = "UTC"
    manual_sync: bool = False

    @model_validator(mode="after")
    def _check(self) -> SyncWindow:
        problems: list[tuple[FieldPath, str]] = []
        if (problem := cron_problem(self.schedule)) is not None:
            problems.append((("schedule",), problem))
        if self.time_zone != "UTC" and self.time_zone not in zoneinfo.available_timezones():
            problems.append(
                (("timeZone",), f"{self.time_zone!r}; allowed: UTC or an IANA zone like Europe/Berlin")
            )
        if problems:
            raise FieldProblems(problems)
        return self


class Sync(Strict):
    """Argo CD sync policy: automated (prune + self-heal) or manual, and when syncs may run."""

    mode: Literal["automated", "manual"]
    windows: list[SyncWindow] = Field(default_factory=list)


class Features(Strict):
    """Switches for optional objects."""

    service_monitor: bool = False
    topology_spread: bool = False


class Quota(Strict):
    """The namespace ResourceQuota."""

    requests_cpu: Quantity
    requests_memory: Quantity
    limits_cpu: Quantity
    limits_memory: Quantity
    requests_ephemeral_storage: Quantity
    limits_ephemeral_storage: Quantity
    pods: int = Field(ge=1)
    persistent_volume_claims: int = Field(ge=0)
    requests_storage: Quantity
    requests_gpu: int = Field(default=0, ge=0)


#: Who makes the route object. `platform`: this repository renders it (the Ingress or HTTPRoute in dist/).
#: `kserve` (with `runtime: kserve`): the KServe controller makes it from its own `inferenceservice-config`
#: (KServe's Gateway API integration), and dist/ holds no route of ours.
RouteMaker = Literal["platform", "kserve"]


class IngressRouting(Strict):
    """networking.k8s.io/v1 Ingress with TLS from cert-manager.

    `madeBy: kserve` is refused: KServe v0.15.2 makes its Ingress without `spec.tls`
    (pkg/controller/v1beta1/inferenceservice/reconcilers/ingress/kube_ingress_reconciler.go), so traffic
    and credentials would cross in clear text, and the `ingress-tls` policy refuses such an Ingress at
    admission: the InferenceService would never become ready.
    """

    kind: Literal["Ingress"]
    class_name: DnsLabel
    tls_issuer: DnsLabel
    made_by: RouteMaker = "platform"

    @model_validator(mode="after")
    def _tls_needs_our_ingress(self) -> IngressRouting:
        if self.made_by == "kserve":
            raise FieldProblems(
                [
                    (
                        ("madeBy",),
                        "'kserve' with kind Ingress: KServe v0.15.2 makes its Ingress without TLS; "
                        "allowed: madeBy platform, or kind Gateway with madeBy kserve",
                    )
                ]
            )
        return self


class GatewayRef(Strict):
    name: DnsLabel
    namespace: DnsLabel
    section_name: DnsLabel | None = None


class GatewayRouting(Strict):
    """Gateway API HTTPRoute attached to an existing Gateway (which terminates TLS).

    `madeBy: kserve` (with `runtime: kserve`): KServe's Gateway API integration makes each stable
    InferenceService's HTTPRoute. The cluster's KServe must be configured to match (its
    `inferenceservice-config` `ingress`: `enableGatewayApi: true`, `kserveIngressGateway:
    <gateway.namespace>/<gateway.name>`, `ingressDomain: <ingressDomain>`, the default `domainTemplate`), so
    each service's host is `<service>-<namespace>.<ingressDomain>` on path `/`, and there is no canary
    (KServe's RawDeployment routes do not split traffic).
    """

    kind: Literal["Gateway"]
    gateway: GatewayRef
    made_by: RouteMaker = "platform"
    #: KServe's `ingressDomain` (only with `madeBy: kserve`).
    ingress_domain: Hostname | None = None

    @model_validator(mode="after")
    def _domain_with_kserve(self) -> GatewayRouting:
        if self.made_by == "kserve" and self.ingress_domain is None:
            message = (
                "missing; with madeBy kserve, KServe's ingressDomain (its hosts are "
                "<service>-<namespace>.<ingressDomain>), e.g. models.example.com"
            )
            raise FieldProblems([(("ingressDomain",), message)])
        if self.made_by == "platform" and self.ingress_domain is not None:
            message = (
                "set, but madeBy is platform (our HTTPRoute uses each service's host); allowed: madeBy kserve"
            )
            raise FieldProblems([(("ingressDomain",), message)])
        return self


Routing = Annotated[IngressRouting | GatewayRouting, Field(discriminator="kind")]


#: The series the load signals read: the runtime contract's (mlplatform.runtime_contract).
LOAD_METRIC = runtime_contract.LOAD_METRIC
LOAD_LABEL = runtime_contract.LOAD_LABEL

#: The autoscaler's default CPU target, as a share of the pod's CPU request (1 CPU for the inference pods of
#: the reference overlays: what one worker uses at its best throughput). Measured by
#: `bench/inference_bench.py --quick --scaling`: at fixed rates (oha, open loop), p99 stays under 5 ms up to
#: where one worker uses 0.67 cores, and leaves it by the next rate (0.76 cores); rounded down to 5%.
DEFAULT_TARGET_CPU_UTILIZATION = 65
#: The default targets of the load signals, per pod, from the same open-loop sweep: at the highest rate with
#: p99 under 5 ms, what one worker's own /metrics shows (LOAD_METRIC over the run, as the trigger's query
#: reads it). `bench/inference_bench.py --quick --rounds 3 --seconds 5 --warmup 2 --scaling` (2026-12-06,
#: 2-core VM, V2 misses): p99 4.34 ms at 4,335 req/s (0.78 cores), 2.25 requests in flight and 4,300
#: served/s there, p99 10.8 ms at the next rate (3.55 in flight); a shorter run (--rounds 1 --seconds 2) gave
#: 2.03 in flight and 4,281/s at the same edge. The lower of the two, rounded down (to 0.1 and to 100 req/s):
#: the cluster adds pods before p99 leaves the budget. apps/inference/README.md "Scaling out" has the table.
DEFAULT_TARGET_IN_FLIGHT = 2.0
DEFAULT_TARGET_REQUEST_RATE = 4200
#: Where KEDA's operator reads Prometheus by default: the Service the Prometheus Operator makes for its
#: Prometheus servers (`prometheus-operated`, port 9090) in the namespace of the reference platform's metrics
#: scraper (`monitoring`, platform.yaml `peers.metrics-scraper`). In-cluster, plain HTTP, no credentials;
#: set `prometheusAddress` where Prometheus runs elsewhere.
DEFAULT_PROMETHEUS_ADDRESS = "http://prometheus-operated.monitoring.svc:9090"

#: What the autoscaler scales on (README "Choosing the autoscaling signal"): `cpu`, the pods' CPU against
#: their request (HPA or KEDA's cpu trigger); `inFlight`, requests in flight per pod; `requestRate`,
#: requests per second per pod (both from the service's own metrics, through KEDA's prometheus trigger).
Signal = Literal["cpu", "inFlight", "requestRate"]
_TARGET_OF: dict[str, str] = {
    "cpu": "target_cpu_utilization",
    "inFlight": "target_in_flight",
    "requestRate": "target_request_rate",
}


Runtime = Literal["deployment", "kserve", "kserve-serverless"]
#: The runtimes whose workloads are KServe InferenceServices (RawDeployment, Serverless).
KSERVE_RUNTIMES = ("kserve", "kserve-serverless")
#: Knative's KPA metric for each load signal (`engine: knative`): requests in flight are its concurrency.
KNATIVE_METRIC_OF: dict[str, str] = {"inFlight": "concurrency", "requestRate": "rps"}
#: Knative refuses a scale-down delay over an hour (its autoscaler's validation).
MAX_SCALE_DOWN_DELAY_S = 3600


class Autoscaling(Strict):
    """HPA (autoscaling/v2), KEDA ScaledObject, or Knative's autoscaler (KPA); each owns the replica count.
    `signal` picks what it scales on; the load signals read Prometheus under `engine: keda` (an HPA would
    need a custom metrics adapter, which this platform does not install; schema/checks.py asks a
    ServiceMonitor). `engine: knative` is `runtime: kserve-serverless`'s: Knative's queue-proxy measures the
    load itself (concurrency for `inFlight`, rps for `requestRate`), `minReplicas: 0` scales to zero, and
    `scaleDownDelay` holds the last pods that long after the load is gone (a cold start saved)."""

    engine: Literal["hpa", "keda", "knative"] = "hpa"
    min_replicas: int = Field(ge=0)
    max_replicas: int = Field(ge=1)
    signal: Signal = "cpu"
    target_cpu_utilization: int = Field(default=DEFAULT_TARGET_CPU_UTILIZATION, ge=1, le=100)
    #: Requests in flight per pod, averaged over the query's window (a decimal: 2.5 is fine).
    target_in_flight: float = Field(default=DEFAULT_TARGET_IN_FLIGHT, gt=0, le=10000)
    #: Requests per second per pod.
    target_request_rate: int = Field(default=DEFAULT_TARGET_REQUEST_RATE, ge=1)
    prometheus_address: Annotated[
        str,
        matching(
            r"^https?://[a-z0-9.-]+(:[0-9]+)?(/[^\s]*[^\s/])?$",
            "Prometheus's http(s):// URL, e.g. http://prometheus-operated.monitoring.svc:9090 "
            "(no trailing /)",
        ),
    ] = DEFAULT_PROMETHEUS_ADDRESS
    #: Knative's `autoscaling.knative.dev/scale-down-delay` (engine knative): at most 1h, Knative's bound.
    scale_down_delay: Duration | None = None

    @property
    def target(self) -> float:
        """The target of the chosen signal."""
        return float(getattr(self, _TARGET_OF[self.signal]))

    def _knative(self) -> list[tuple[FieldPath, str]]:
        problems: list[tuple[FieldPath, str]] = []
        if self.signal not in KNATIVE_METRIC_OF:
            problems.append(
                (
                    ("signal",),
                    f"{self.signal!r} with engine knative (Knative scales on CPU only through its HPA class, "
                    "which cannot scale to zero); allowed: inFlight or requestRate",
                )
            )
        if self.scale_down_delay is not None and seconds(self.scale_down_delay) > MAX_SCALE_DOWN_DELAY_S:
            problems.append(
                (
                    ("scaleDownDelay",),
                    f"{self.scale_down_delay!r} is longer than Knative allows; allowed: at most 1h",
                )
            )
        if "prometheus_address" in self.model_fields_set:
            problems.append(
                (
                    ("prometheusAddress",),
                    "set, but engine knative reads the load from its queue-proxy, not Prometheus; "
                    "allowed: with engine keda",
                )
            )
        return problems

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        problems: list[tuple[FieldPath, str]] = []
        if self.max_replicas < self.min_replicas:
            problems.append(
                (
                    ("maxReplicas",),
                    f"{self.max_replicas} is below minReplicas ({self.min_replicas}); "
                    "allowed: maxReplicas >= minReplicas",
                )
            )
        if self.min_replicas == 0 and self.engine != "knative":
            problems.append(
                (
                    ("minReplicas",),
                    f"0, but engine {self.engine!r} cannot scale to zero; allowed: minReplicas >= 1, or "
                    "engine knative (runtime kserve-serverless)",
                )
            )
        if self.engine == "knative":
            problems += self._knative()
        elif self.scale_down_delay is not None:
            problems.append(
                (("scaleDownDelay",), f"set, but engine is {self.engine!r}; allowed: with engine knative")
            )
        if self.signal != "cpu" and self.engine == "hpa":
            problems.append(
                (
                    ("signal",),
                    f"{self.signal!r} needs engine keda (an HPA would need a custom metrics adapter, "
                    "not installed here); allowed: engine keda, or signal cpu",
                )
            )
        for signal, field in _TARGET_OF.items():
            if field in self.model_fields_set and signal != self.signal:
                name = to_camel(field)
                problems.append(
                    ((name,), f"set, but signal is {self.signal!r}; allowed: {name} with signal {signal!r}")
                )
        if (
            "prometheus_address" in self.model_fields_set
            and self.signal == "cpu"
            and self.engine != "knative"
        ):
            problems.append(
                (
                    ("prometheusAddress",),
                    "set, but signal cpu reads no Prometheus; allowed: signal inFlight or requestRate",
                )
            )
        if problems:
            raise FieldProblems(problems)
        return self


class Toleration(Strict):
    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class Gpu(Strict):
    """GPU requests (extended resource), plus where GPU nodes are and the taints they carry."""

    count: int = Field(ge=1)
    resource_name: str = "nvidia.com/gpu"
    node_selector: dict[str, str] = Field(min_length=1)
    tolerations: list[Toleration] = Field(default_factory=list)


class ImageModels(Strict):
    """The model files are inside the pinned image under /models."""

    source: Literal["image"]


class PvcModels(Strict):
    """A model-cache PVC, filled by an init container that copies /models out of a pinned image."""

    source: Literal["pvc"]
    image: Annotated[
        str,
        matching(
            r"^[a-z0-9]+([._/:-][a-z0-9]+)*@sha256:[a-f0-9]{64}$",
            "an image pinned by digest: repository@sha256:<64 hex>",
        ),
    ]
    #: Where the models are in the model image: by default where the service reads them in its own image.
    path: AbsolutePath = runtime_contract.MODEL_DIR
    storage_class: DnsLabel
    size: Quantity
    access_mode: Literal["ReadWriteMany", "ReadWriteOnce", "ReadOnlyMany"] = "ReadWriteMany"


ModelDelivery = Annotated[ImageModels | PvcModels, Field(discriminator="source")]


class Canary(Strict):
    """A second version of the service that gets `weight` percent of the traffic (Gateway routing only)."""

    image_digest: Digest
    models: list[Model] = Field(min_length=1)
    weight: int = Field(ge=1, le=99)
    replicas: int = Field(default=1, ge=1)


class ServiceOverlay(Strict):
    image_digest: Digest
    host: Hostname
    path: AbsolutePath = "/"
    #: The external gRPC route's host (the service's `grpc` port): a GRPCRoute on the Gateway with the
    #: HTTPRoute's canary weights, or an nginx Ingress with `backend-protocol: GRPC` and its own certificate.
    #: Its own host: Gateway API does not let a GRPCRoute and an HTTPRoute share a hostname, and nginx's
    #: backend protocol holds for a whole Ingress. Absent: gRPC is reachable inside the cluster only. With
    #: `runtime: kserve` (HTTP only) it is not read.
    grpc_host: Hostname | None = None
    replicas: int = Field(default=1, ge=1)
    autoscaling: Autoscaling | None = None
    resources: Resources
    tuning: Tuning = Tuning()
    model_delivery: ModelDelivery = ImageModels(source="image")
    gpu: Gpu | None = None
    canary: Canary | None = None
    #: OIDC tokens and the access policy (schema/identity.py); absent: API keys only, as before.
    identity: Identity | None = None

    @model_validator(mode="after")
    def _one_owner_of_replicas(self) -> ServiceOverlay:
        if self.autoscaling is not None and "replicas" in self.model_fields_set:
            raise FieldProblems(
                [
                    (
                        ("replicas",),
                        f"{self.replicas} is set together with autoscaling, which owns the replica count; "
                        "allowed: one of replicas or autoscaling",
                    )
                ]
            )
        return self


class RedisOverlay(Strict):
    image_digest: Digest
    replicas: int = Field(default=1, ge=1, le=5)
    storage_class: DnsLabel
    storage_size: Quantity
    maxmemory: Annotated[str, matching(r"^[0-9]+(mb|gb)$", "a Redis size such as 128mb or 1gb")]
    resources: Resources


#: Redis's own units (redis.conf): mb and gb are powers of 1024.
_REDIS_UNITS = {"mb": 1024**2, "gb": 1024**3}
#: What one job adds to the jobs Redis beside its request and its result: the job hash's other fields, its
#: stream entry, its idempotency key (measured: well under 1 KiB; four times that as margin).
JOB_OVERHEAD_BYTES = 4096
#: The jobs Redis's own baseline and the quota counters (a few keys per caller).
JOBS_STORE_BASELINE_BYTES = 16 * 1024**2


def redis_size_bytes(size: str) -> int:
    """`128mb` -> bytes, as Redis reads its maxmemory."""
    return int(size[:-2]) * _REDIS_UNITS[size[-2:]]


class JobsRedis(Strict):
    """The jobs Redis: one persistent `noeviction` pod (apps/inference/README.md "Jobs and quotas").

    `maxmemory` defaults to what a full queue at maxWorkers and its results need (`Jobs.store_bytes`)."""

    image_digest: Digest
    storage_class: DnsLabel
    storage_size: Quantity
    maxmemory: Annotated[str, matching(r"^[0-9]+(mb|gb)$", "a Redis size such as 128mb or 1gb")] | None = None
    resources: Resources


class Jobs(Strict):
    """Asynchronous jobs: the jobs Redis, and per service a worker Deployment KEDA scales on the queue."""

    enabled: bool = False
    min_workers: int = Field(default=0, ge=0)
    max_workers: int = Field(default=1, ge=1)
    stream_length_per_worker: int = Field(default=64, ge=1)
    visibility_timeout_seconds: int | None = Field(default=None, ge=1)
    max_attempts: int | None = Field(default=None, ge=1)
    result_ttl_seconds: int | None = Field(default=None, ge=1)
    #: The largest request body a job may queue (bytes): larger ones get 413 at submit
    #: (INFERENCE_JOBS_MAX_REQUEST_BYTES). The queued body is kept in the jobs Redis until the job finishes.
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: The largest result a job may store (bytes): larger ones are refused at submit when bound to be, and
    #: fail on their first attempt when they turn out larger (INFERENCE_JOBS_MAX_RESULT_BYTES).
    max_result_bytes: int = Field(default=1024 * 1024, ge=1024)
    redis: JobsRedis | None = None

    @property
    def store_bytes(self) -> int:
        """The jobs Redis memory a full queue at maxWorkers needs: maxWorkers x streamLengthPerWorker jobs
        (the queue length at which KEDA runs maxWorkers), each holding a request of up to maxRequestBytes
        and then a result of up to maxResultBytes for the result TTL, plus each job's overhead and the
        store's baseline. Past it the noeviction store refuses writes: a submit gets 503, a result fails its
        job with that reason; nothing stored is evicted."""
        jobs = self.max_workers * self.stream_length_per_worker
        per_job = self.max_request_bytes + self.max_result_bytes + JOB_OVERHEAD_BYTES
        return jobs * per_job + JOBS_STORE_BASELINE_BYTES

    @property
    def maxmemory(self) -> str:
        """The jobs Redis's maxmemory: the overlay's, else `store_bytes` rounded up to whole mb."""
        if self.redis is not None and self.redis.maxmemory is not None:
            return self.redis.maxmemory
        return f"{-(-self.store_bytes // _REDIS_UNITS['mb'])}mb"

    @model_validator(mode="after")
    def _bounds(self) -> Jobs:
        problems: list[tuple[FieldPath, str]] = []
        if self.max_workers < self.min_workers:
            problems.append(
                (
                    ("maxWorkers",),
                    f"{self.max_workers} is below minWorkers ({self.min_workers}); "
                    "allowed: maxWorkers >= minWorkers",
                )
            )
        if self.enabled and self.redis is None:
            problems.append((("redis",), "missing, but enabled is true; allowed: the jobs Redis's settings"))
        if self.redis is not None and self.redis.maxmemory is not None:
            have, need = redis_size_bytes(self.redis.maxmemory), self.store_bytes
            if have < need:
                mb = -(-need // 1024**2)
                sizes = f"{self.max_request_bytes}+{self.max_result_bytes}+{JOB_OVERHEAD_BYTES} B"
                problems.append(
                    (
                        ("redis", "maxmemory"),
                        f"{self.redis.maxmemory} is short of a full queue at maxWorkers with results: "
                        f"{self.max_workers} x {self.stream_length_per_worker} jobs x ({sizes}) + 16mb = "
                        f"{mb}mb; allowed: >= {mb}mb, or unset (default)",
                    )
                )
        if problems:
            raise FieldProblems(problems)
        return self


class Quotas(Strict):
    """Per-caller quotas (0: no limit), counted in the jobs Redis; failOpen: admit when it is unreachable."""

    requests_per_minute: int = Field(default=0, ge=0)
    rows_per_day: int = Field(default=0, ge=0)
    fail_open: bool = False


class PeerOverride(Strict):
    """Where a peer declared in platform.yaml runs in this environment (and as which ServiceAccount)."""

    namespace: DnsLabel
    pod_labels: dict[str, str] = Field(min_length=1)
    service_account: DnsLabel | None = None


class Overlay(Strict):
    """The whole overlays/<env>.yaml.

    `runtime`: `deployment` (default) renders each service as Deployments and Services; `kserve` renders each
    version as a KServe InferenceService (serving.kserve.io/v1beta1) in Standard (RawDeployment) mode, for
    clusters that run the KServe controller; `kserve-serverless` renders each service as one Serverless
    InferenceService (Knative: scale to zero, the canary as `canaryTrafficPercent`), for clusters that also
    run Knative Serving (README "Which runtime when").

    `mesh`: `none` (default), or `istio`: the namespace joins the cluster's Istio mesh (sidecars injected,
    istio-cni required), mTLS is STRICT, and on top of a deny-all each declared connection gets one
    AuthorizationPolicy (principal from the source's ServiceAccount, ports from the spec); the NetworkPolicies
    stay as the second layer (README "Service mesh").
    """

    namespace: DnsLabel
    runtime: Runtime = "deployment"
    mesh: Literal["none", "istio"] = "none"
    #: the one cluster the environment runs on; or `clusters`: several, each with its own folder
    #: dist/<env>/<cluster>/ and Application (one of the two)
    cluster: Cluster | None = None
    clusters: dict[DnsLabel, Placement] | None = Field(default=None, min_length=1)
    sync: Sync
    secret_store: DnsLabel
    routing: Routing
    features: Features = Features()
    quota: Quota
    redis: RedisOverlay
    services: dict[DnsLabel, ServiceOverlay] = Field(min_length=1)
    peers: dict[DnsLabel, PeerOverride] = Field(default_factory=dict)
    jobs: Jobs = Jobs()
    quotas: Quotas = Quotas()

    @model_validator(mode="after")
    def _one_placement(self) -> Overlay:
        if (self.cluster is None) == (self.clusters is None):
            both = "both are set" if self.cluster is not None else "neither is set"
            raise FieldProblems(
                [(("cluster",), f"{both}; allowed: one of cluster (one cluster) or clusters (several)")]
            )
        problems: list[tuple[FieldPath, str]] = []
        for cluster, placement in (self.clusters or {}).items():
            for name, change in placement.services.items():
                at: FieldPath = ("clusters", cluster, "services", name)
                problems += _service_in_cluster(self.services.get(name), change, at, sorted(self.services))
        if problems:
            raise FieldProblems(problems)
        return self

    def placements(self) -> dict[str, Overlay]:
        """cluster name -> this overlay as that cluster runs it (its server, storage class and services'
        changes applied, `clusters` gone); {} for a one-cluster overlay."""
        out = {}
        for cluster, placement in (self.clusters or {}).items():
            storage_class = placement.storage_class
            services = {
                name: _in_cluster(svc, placement.services.get(name), storage_class)
                for name, svc in self.services.items()
            }
            update: dict[str, object] = {
                "cluster": Cluster(server=placement.server),
                "clusters": None,
                "services": services,
            }
            if storage_class is not None:
                update["redis"] = self.redis.model_copy(update={"storage_class": storage_class})
                if self.jobs.redis is not None:
                    jobs_redis = self.jobs.redis.model_copy(update={"storage_class": storage_class})
                    update["jobs"] = self.jobs.model_copy(update={"redis": jobs_redis})
            out[cluster] = self.model_copy(update=update)
        return out

    @model_validator(mode="after")
    def _quotas_need_jobs(self) -> Overlay:
        limited = self.quotas.requests_per_minute or self.quotas.rows_per_day
        if limited and not self.jobs.enabled:
            raise FieldProblems(
                [
                    (
                        ("quotas",),
                        "limits are set but jobs.enabled is false (the counters live in the jobs Redis); "
                        "allowed: jobs.enabled: true, or limits of 0",
                    )
                ]
            )
        return self


def _service_in_cluster(
    svc: ServiceOverlay | None, change: ServiceInCluster, at: FieldPath, known: list[str]
) -> list[tuple[FieldPath, str]]:
    """What is wrong with a cluster's change to a service of the overlay."""
    if svc is None:
        return [(at, f"no such service in this overlay's services; allowed: {', '.join(known)}")]
    problems: list[tuple[FieldPath, str]] = []
    bounds = change.min_replicas is not None or change.max_replicas is not None
    if svc.autoscaling is None and bounds:
        field = "minReplicas" if change.min_replicas is not None else "maxReplicas"
        problems.append(((*at, field), "set, but the service has no autoscaling; allowed: replicas"))
    if svc.autoscaling is not None and change.replicas is not None:
        problems.append(
            (
                (*at, "replicas"),
                "set, but autoscaling owns the replica count; allowed: minReplicas, maxReplicas",
            )
        )
    if svc.autoscaling is not None:
        low = change.min_replicas if change.min_replicas is not None else svc.autoscaling.min_replicas
        high = change.max_replicas if change.max_replicas is not None else svc.autoscaling.max_replicas
        if high < low:
            problems.append(
                (
                    (*at, "maxReplicas"),
                    f"{high} is below minReplicas ({low}) here; allowed: maxReplicas >= minReplicas",
                )
            )
    if change.grpc_host is not None and svc.grpc_host is None:
        problems.append(((*at, "grpcHost"), "set, but the service has no grpcHost; allowed: host"))
    return problems


def _in_cluster(
    svc: ServiceOverlay, change: ServiceInCluster | None, storage_class: str | None
) -> ServiceOverlay:
    """The service as one cluster runs it: its changes there, its PVC-delivered models on the cluster's
    StorageClass."""
    update: dict[str, object] = {}
    if change is not None:
        update |= {k: v for k, v in (("host", change.host), ("grpc_host", change.grpc_host)) if v is not None}
        if change.replicas is not None:
            update["replicas"] = change.replicas
        bounds = {"min_replicas": change.min_replicas, "max_replicas": change.max_replicas}
        if svc.autoscaling is not None and any(v is not None for v in bounds.values()):
            update["autoscaling"] = svc.autoscaling.model_copy(
                update={k: v for k, v in bounds.items() if v is not None}
            )
    if storage_class is not None and isinstance(svc.model_delivery, PvcModels):
        update["model_delivery"] = svc.model_delivery.model_copy(update={"storage_class": storage_class})
    return svc.model_copy(update=update) if update else svc
