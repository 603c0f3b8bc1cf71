"""The pod template of one version (stable or canary) of an inference service, as typed k8s structs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cdk8s_plus_33 import k8s

from mlplatform import names
from mlplatform.components import identity
from mlplatform.components.base import (
    container_security_context,
    pod_security_context,
    port,
    quantity,
    resources,
    secret_volume,
    tcp_port,
)
from mlplatform.components.model_source import fetched
from mlplatform.runtime_contract import (
    API_KEYS_DIR,
    API_KEYS_FILE,
    DRAIN_SECONDS,
    GRPC_PORT,
    GRPC_PORT_NAME,
    HTTP_PORT_NAME,
    INFERENCE_PORT,
    JOBS_REDIS_PASSWORD_DIR,
    LIVE_PATH,
    METRICS_TOKEN_DIR,
    METRICS_TOKEN_FILE,
    MODEL_DIR,
    READY_PATH,
    REDIS_PASSWORD_DIR,
    REDIS_PASSWORD_FILE,
    TMP_DIR,
    WORKER_COMMAND,
)

if TYPE_CHECKING:
    from mlplatform.schema.catalog import RemoteSource
    from mlplatform.schema.overlay import Gpu, PvcModels, ServiceOverlay
    from mlplatform.schema.platform import Model

APP_UID = 10001
MODEL_FETCH_DIR = "/mnt/models"
MODEL_CACHE_VOLUME = "models"  # the model-cache PVC's volume in the pod
#: The probes stay HTTP where the pods also serve gRPC: the gRPC server runs in the same process, on the same
#: event loop, and its grpc.health.v1 status is set from the same readiness as /v2/health/ready, so a gRPC
#: probe would report the same thing; and grpc.health.v1 has one status per service name where liveness and
#: readiness must differ (a failed model load is "not live", loading is only "not ready"). The boot check
#: of the cluster test checks that the declared `grpc` port answers grpc.health.v1 with SERVING.
#: Probe budgets (period, failures, timeout): startup allows 5 minutes for loading and warming the models;
#: after that readiness reacts within 15 s and liveness restarts a hung process after 30 s.
STARTUP_PROBE = (5, 60, 3)
READINESS_PROBE = (5, 3, 3)
LIVENESS_PROBE = (10, 3, 3)
#: How long the service takes new requests after its pod is told to stop: the kubelet's preStop sleep runs
#: before SIGTERM (on which uvicorn closes its listener at once), while the endpoint controller, kube-proxy
#: and the ingress controller drop the terminating pod; two readiness periods cover that propagation.
PRE_STOP_SECONDS = 2 * READINESS_PROBE[0]
#: Past the preStop sleep and the drain, a margin for the process to exit before SIGKILL.
TERMINATION_GRACE_SECONDS = PRE_STOP_SECONDS + DRAIN_SECONDS + 5
INIT_RESOURCES = {
    "limits": {"cpu": "500m", "ephemeral-storage": "64Mi", "memory": "256Mi"},
    "requests": {"cpu": "100m", "ephemeral-storage": "64Mi", "memory": "256Mi"},
}
SPREAD_KEYS = ("topology.kubernetes.io/zone", "kubernetes.io/hostname")


@dataclass(frozen=True, kw_only=True, slots=True)
class PodProps:
    """What one version's pods need: which version of which platform, its image and its ConfigMap."""

    platform: str
    version: names.Version
    overlay: ServiceOverlay
    image: str
    use_cache: bool
    #: The version's models whose catalog source is not the image, with their catalog sha256 (of model.onnx):
    #: the model-source init container fetches them.
    remote: tuple[tuple[Model, RemoteSource], ...] = ()
    remote_sha256: Mapping[tuple[str, str], str] = field(default_factory=dict)
    #: The pods serve gRPC on GRPC_PORT (the API's where the service's `grpc` is on and the runtime is
    #: `deployment`; never a job worker's).
    grpc: bool = False
    #: Spread the pods over zones and nodes (the overlay's features.topologySpread).
    topology_spread: bool = False
    #: Mount the jobs Redis's password (the overlay enables jobs).
    jobs: bool = False
    #: The service's job worker (`WORKER_COMMAND`, no API keys, its own name label) instead of its API.
    worker: bool = False
    #: Mount the scraper's /metrics token (a ServiceMonitor scrapes the service).
    metrics_token: bool = False
    #: Knative runs the pods (`runtime: kserve-serverless`): what its validation refuses is left out (a grace
    #: period, a preStop hook, `privileged`, `fsGroupChangePolicy`) and the port is named as it requires.
    knative: bool = False

    @property
    def name_label(self) -> str:
        """The pods' app.kubernetes.io/name: the component NetworkPolicies and PDBs select."""
        return names.ServiceNames(self.version.service).worker if self.worker else self.version.service

    @property
    def selector(self) -> dict[str, str]:
        return names.select(self.name_label) if self.worker else self.version.selector


#: Knative accepts a serving port only named `http1` (HTTP/1) or `h2c`, and a probe of the user container only
#: on that port (knative.dev/serving pkg/apis/serving/k8s_validation.go): its queue-proxy runs the probes.
KNATIVE_HTTP_PORT_NAME = "http1"


def http_port_name(props: PodProps) -> str:
    return KNATIVE_HTTP_PORT_NAME if props.knative else HTTP_PORT_NAME


def http_probe(path: str, budget: tuple[int, int, int], *, port_name: str = HTTP_PORT_NAME) -> k8s.Probe:
    period, failures, timeout = budget
    return k8s.Probe(
        http_get=k8s.HttpGetAction(path=path, port=port(port_name), scheme="HTTP"),
        period_seconds=period,
        failure_threshold=failures,
        timeout_seconds=timeout,
    )


def _storage(props: PodProps) -> tuple[list[k8s.Volume], list[k8s.VolumeMount]]:
    """The volumes and the main container's mounts: /tmp, the API keys, the Redis password, the models."""
    service = names.ServiceNames(props.version.service)
    tmp = k8s.EmptyDirVolumeSource(size_limit=quantity(props.overlay.resources.limits.ephemeral_storage))
    volumes = [k8s.Volume(name="tmp", empty_dir=tmp)]
    mounts = [k8s.VolumeMount(name="tmp", mount_path=TMP_DIR)]
    if not props.worker:
        volumes.append(secret_volume("api-keys", secret=service.api_keys, key=API_KEYS_FILE))
        mounts.append(k8s.VolumeMount(name="api-keys", mount_path=API_KEYS_DIR, read_only=True))
    if props.metrics_token and not props.worker:
        volumes.append(secret_volume("metrics-token", secret=service.metrics_token, key=METRICS_TOKEN_FILE))
        mounts.append(k8s.VolumeMount(name="metrics-token", mount_path=METRICS_TOKEN_DIR, read_only=True))
    if props.use_cache:
        volumes.append(secret_volume("redis-password", secret=names.REDIS_AUTH, key=REDIS_PASSWORD_FILE))
        mounts.append(k8s.VolumeMount(name="redis-password", mount_path=REDIS_PASSWORD_DIR, read_only=True))
    if props.jobs:
        password = secret_volume("jobs-redis-password", secret=names.JOBS_REDIS_AUTH, key=REDIS_PASSWORD_FILE)
        volumes.append(password)
        mounts.append(
            k8s.VolumeMount(name="jobs-redis-password", mount_path=JOBS_REDIS_PASSWORD_DIR, read_only=True)
        )
    if props.overlay.identity is not None and not props.worker:  # a job worker serves no callers
        ident = props.overlay.identity
        volumes.append(identity.volume(service=props.version.service, version=props.version, identity=ident))
        mounts.append(identity.MOUNT)
    if props.overlay.model_delivery.source == "pvc":
        claim = k8s.PersistentVolumeClaimVolumeSource(claim_name=service.model_cache)
        volumes.append(k8s.Volume(name=MODEL_CACHE_VOLUME, persistent_volume_claim=claim))
        mounts.append(k8s.VolumeMount(name=MODEL_CACHE_VOLUME, mount_path=MODEL_DIR, read_only=True))
    return volumes, mounts


def _container(props: PodProps, mounts: list[k8s.VolumeMount]) -> k8s.Container:
    serving_port = http_port_name(props)
    gpu = props.overlay.gpu
    extra = {gpu.resource_name: str(gpu.count)} if gpu else None
    config = names.ServiceNames(props.version.service).worker_config if props.worker else props.version.config
    return k8s.Container(
        name="inference",
        image=props.image,
        image_pull_policy="IfNotPresent",
        command=list(WORKER_COMMAND) if props.worker else None,
        ports=[
            tcp_port(serving_port, INFERENCE_PORT),
            *([tcp_port(GRPC_PORT_NAME, GRPC_PORT)] if props.grpc else []),
        ],
        env_from=[k8s.EnvFromSource(config_map_ref=k8s.ConfigMapEnvSource(name=config))],
        resources=resources(props.overlay.resources.as_k8s(extra_requests=extra)),
        security_context=container_security_context(APP_UID, knative=props.knative),
        startup_probe=http_probe(READY_PATH, STARTUP_PROBE, port_name=serving_port),
        readiness_probe=http_probe(READY_PATH, READINESS_PROBE, port_name=serving_port),
        liveness_probe=http_probe(LIVE_PATH, LIVENESS_PROBE, port_name=serving_port),
        # The API keeps serving while the endpoint goes away (a job worker has no endpoint to wait for; on
        # Knative its queue-proxy drains the pod, and Knative refuses a lifecycle: its Container field mask).
        lifecycle=None
        if props.worker or props.knative
        else k8s.Lifecycle(pre_stop=k8s.LifecycleHandler(sleep=k8s.SleepAction(seconds=PRE_STOP_SECONDS))),
        volume_mounts=mounts,
    )


def model_fetch(delivery: PvcModels, *, knative: bool = False) -> k8s.Container:
    """Init container: copy the models out of the pinned model image into the cache PVC, once per digest."""
    marker = f"{MODEL_FETCH_DIR}/.complete-{delivery.image.rsplit(':', 1)[1][:12]}"
    copy = f"cp -R {delivery.path}/. {MODEL_FETCH_DIR}/ && touch {marker}"
    script = f"set -eu; if [ ! -f {marker} ]; then {copy}; fi"
    return k8s.Container(
        name="model-fetch",
        image=delivery.image,
        image_pull_policy="IfNotPresent",
        command=["sh", "-c", script],
        resources=resources(INIT_RESOURCES),
        security_context=container_security_context(APP_UID, knative=knative),
        volume_mounts=[k8s.VolumeMount(name=MODEL_CACHE_VOLUME, mount_path=MODEL_FETCH_DIR)],
    )


def _spread(props: PodProps, match: dict[str, str]) -> list[k8s.TopologySpreadConstraint] | None:
    if not props.topology_spread:
        return None
    selector = k8s.LabelSelector(match_labels=match)
    return [
        k8s.TopologySpreadConstraint(
            max_skew=1, topology_key=key, when_unsatisfiable="ScheduleAnyway", label_selector=selector
        )
        for key in SPREAD_KEYS
    ]


def _service_account(props: PodProps) -> str:
    """The service's versions run as the service's ServiceAccount, its job worker as its own: two identities
    (an Istio mesh authorizes each connection by the caller's)."""
    svc = names.ServiceNames(props.version.service)
    return svc.worker_service_account if props.worker else svc.service_account


def _tolerations(gpu: Gpu | None) -> list[k8s.Toleration] | None:
    if gpu is None:
        return None
    return [
        k8s.Toleration(key=t.key, operator=t.operator, value=t.value, effect=t.effect)
        for t in gpu.tolerations
    ]


def _track(props: PodProps) -> dict[str, str]:
    """The track label (stable or canary); a worker serves no traffic, so it has none."""
    return {} if props.worker else {names.TRACK: props.version.track}


def pod_template(props: PodProps) -> k8s.PodTemplateSpec:
    """The pod template of one version of a service."""
    component = "worker" if props.worker else "inference"
    labels = names.common(platform=props.platform, name=props.name_label, component=component)
    volumes, mounts = _storage(props)
    delivery, gpu = props.overlay.model_delivery, props.overlay.gpu
    pvc = delivery if delivery.source == "pvc" else None
    init = [model_fetch(pvc, knative=props.knative)] if pvc is not None else []
    if props.remote:
        extra = fetched(
            sources=props.remote,
            catalog_sha256=props.remote_sha256,
            image=props.image,
            model_dir=MODEL_DIR,
            size_limit=props.overlay.resources.limits.ephemeral_storage,
            uid=APP_UID,
            init_resources=INIT_RESOURCES,
            cache_volume=MODEL_CACHE_VOLUME if pvc is not None else None,
            knative=props.knative,
        )
        volumes, mounts, init = volumes + extra.volumes, mounts + extra.mounts, [*init, extra.init]
    spec = k8s.PodSpec(
        service_account_name=_service_account(props),
        automount_service_account_token=False,
        enable_service_links=False,
        security_context=pod_security_context(APP_UID, knative=props.knative),
        # Knative sets it from the revision's timeout and refuses ours (its PodSpec field mask)
        termination_grace_period_seconds=None if props.knative else TERMINATION_GRACE_SECONDS,
        init_containers=init or None,
        containers=[_container(props, mounts)],
        volumes=volumes,
        node_selector=dict(sorted(gpu.node_selector.items())) if gpu else None,
        tolerations=_tolerations(gpu),
        topology_spread_constraints=_spread(props, props.selector),
    )
    ident = props.overlay.identity
    annotations = identity.policy_hash(ident) if ident is not None and not props.worker else None
    metadata = k8s.ObjectMeta(labels=labels | _track(props), annotations=annotations)
    return k8s.PodTemplateSpec(metadata=metadata, spec=spec)
