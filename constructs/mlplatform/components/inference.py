"""An inference service: ServiceAccount, API-key ExternalSecret, one `service_version` per track (ConfigMap,
Deployment, Service), autoscaler (HPA or KEDA), PodDisruptionBudget, optional ServiceMonitor, model cache PVC,
and its route (Ingress or HTTPRoute).

cdk8s-plus L2 constructs make the ServiceAccount and the ConfigMaps. The Deployment and Service are the k8s
L1 classes: cdk8s-plus's Deployment cannot express what these pods need (ephemeral-storage in Mi, GPU
extended resources, topologySpreadConstraints, nodeSelector, probes on the named port), and its Service
targets port numbers only, where ours targets the container port by name.
"""

from __future__ import annotations

import cdk8s_plus_33 as kplus
from cdk8s_plus_33 import k8s
from mlplatform_crds.com.coreos import monitoring
from mlplatform_crds.sh import keda

from constructs import Construct
from mlplatform import names
from mlplatform.components import identity, kserve
from mlplatform.components.base import (
    KEEP,
    WAVE_DATA,
    WAVE_SERVICES,
    Meta,
    port,
    quantity,
    service_account,
)
from mlplatform.components.jobs_settings import jobs_settings
from mlplatform.components.pods import (
    API_KEYS_DIR,
    API_KEYS_KEY,
    GRPC_PORT_NAME,
    HTTP_PORT,
    METRICS_TOKEN_DIR,
    METRICS_TOKEN_KEY,
    MODEL_DIR,
    REDIS_PASSWORD_DIR,
    REDIS_PASSWORD_KEY,
    PodProps,
    pod_template,
)
from mlplatform.components.routing import route
from mlplatform.components.secrets import external_secret
from mlplatform.schema import Environment
from mlplatform.schema.overlay import LOAD_LABEL, LOAD_METRIC, Autoscaling, PvcModels, ServiceOverlay
from mlplatform.schema.platform import GRPC_PORT, INFERENCE_PORT, REDIS_PORT, Model, Service, Tuning

METRICS_PATH = "/metrics"
#: Connection limits every API pod runs with (apps/inference/README.md "Limits under hostile clients"):
#: written out so that what a pod enforces reads from its ConfigMap.
CONNECTION_LIMITS = {
    "INFERENCE_HEADER_TIMEOUT_SECONDS": "10",
    "INFERENCE_IDLE_TIMEOUT_SECONDS": "5",
    "INFERENCE_MAX_HEADER_BYTES": "32768",
    "INFERENCE_MAX_CONNECTIONS": "1000",
    "INFERENCE_MAX_IN_FLIGHT": "256",
}
SCRAPE_SECONDS = 30
SCRAPE_INTERVAL = f"{SCRAPE_SECONDS}s"
#: The load signals' rate() window: four scrapes, so one missed scrape still leaves a rate.
RATE_WINDOW = f"{4 * SCRAPE_SECONDS}s"
H2C = "kubernetes.io/h2c"  # the gRPC Service port's appProtocol: HTTP/2 over cleartext


def settings(
    env: Environment, *, name: str, service: Service, overlay: ServiceOverlay, models: list[Model]
) -> dict[str, str]:
    """INFERENCE_* settings of the runtime contract (README)."""
    data = {
        "INFERENCE_GRPC_PORT": str(GRPC_PORT if env.serves_grpc(name) else 0),
        "INFERENCE_MODEL_REPOSITORY": MODEL_DIR,
        "INFERENCE_MODELS": ",".join(f"{m.name}:{m.version}" for m in models),
        "INFERENCE_API_KEYS_FILE": f"{API_KEYS_DIR}/{API_KEYS_KEY}",
        **CONNECTION_LIMITS,
    }
    if scraped(env, service):
        data["INFERENCE_METRICS_TOKEN_FILE"] = f"{METRICS_TOKEN_DIR}/{METRICS_TOKEN_KEY}"
    if service.use_cache:
        data["INFERENCE_REDIS_URL"] = f"redis://{names.REDIS}:{REDIS_PORT}/0"
        data["INFERENCE_REDIS_PASSWORD_FILE"] = f"{REDIS_PASSWORD_DIR}/{REDIS_PASSWORD_KEY}"
    tuning = _merge(service.tuning, overlay.tuning)
    for key, value in (
        ("INFERENCE_CACHE_TTL_SECONDS", tuning.cache_ttl_seconds),
        ("INFERENCE_MAX_BATCH_SIZE", tuning.max_batch_size),
        ("INFERENCE_MAX_BATCH_WAIT_MS", tuning.max_batch_wait_ms),
        ("INFERENCE_ORT_INTRA_OP_THREADS", tuning.ort_intra_op_threads),
    ):
        if value is not None:
            data[key] = str(value)
    if tuning.execution_providers is not None:
        data["INFERENCE_EXECUTION_PROVIDERS"] = ",".join(tuning.execution_providers)
    data |= jobs_settings(env, name)
    if overlay.identity is not None:
        data |= identity.settings(overlay.identity)
    return dict(sorted(data.items()))


def scraped(env: Environment, service: Service) -> bool:
    """A ServiceMonitor scrapes the service, with its token (the spec check requires one with the monitor)."""
    return env.overlay.features.service_monitor and service.metrics_token is not None


def _merge(base: Tuning, override: Tuning) -> Tuning:
    values = base.model_dump(by_alias=True, exclude_none=True)
    values.update(override.model_dump(by_alias=True, exclude_none=True))
    return Tuning.model_validate(values)


def service_version(
    scope: Construct,
    *,
    meta: Meta,
    pod: PodProps,
    models: list[Model],
    replicas: int | None,
    autoscaling: Autoscaling | None = None,
) -> None:
    """One version (stable or canary) of a service: its ConfigMap, Deployment and Service (with
    `runtime: kserve`, its ConfigMap and an InferenceService, whose controller makes the rest).

    `replicas=None` leaves the count to an autoscaler (the Deployment then carries none). A function, not a
    construct: each construct is a round trip to cdk8s's Node process, and this one would add nothing else.
    """
    env, version = pod.env, pod.version
    service = env.platform.services[version.service]
    data = settings(env, name=version.service, service=service, overlay=pod.overlay, models=models)
    track = version.track
    kplus.ConfigMap(scope, f"{track}-config", metadata=meta.api(version.config), data=data)
    if pod.overlay.identity is not None:
        identity.version_config(scope, meta=meta, version=version, identity=pod.overlay.identity)
    if env.overlay.runtime == "kserve":
        kserve.inference_service(scope, meta=meta, pod=pod, replicas=replicas, autoscaling=autoscaling)
        return
    strategy = k8s.DeploymentStrategy(
        type="RollingUpdate",
        rolling_update=k8s.RollingUpdateDeployment(max_surge=port(1), max_unavailable=port(0)),
    )
    spec = k8s.DeploymentSpec(
        replicas=replicas,
        revision_history_limit=5,
        selector=k8s.LabelSelector(match_labels=version.selector),
        strategy=strategy,
        template=pod_template(pod),
    )
    k8s.KubeDeployment(scope, f"{track}-deployment", metadata=meta.l1(version.name), spec=spec)
    ports = [
        k8s.ServicePort(name=HTTP_PORT, port=INFERENCE_PORT, target_port=port(HTTP_PORT), protocol="TCP")
    ]
    if pod.grpc:  # HTTP/2 without TLS inside the cluster: meshes and Gateways read appProtocol
        target = port(GRPC_PORT_NAME)
        ports.append(
            k8s.ServicePort(
                name=GRPC_PORT_NAME, port=GRPC_PORT, target_port=target, protocol="TCP", app_protocol=H2C
            )
        )
    service_spec = k8s.ServiceSpec(type="ClusterIP", selector=version.selector, ports=ports)
    k8s.KubeService(scope, f"{track}-service", metadata=meta.l1(version.name), spec=service_spec)


class InferenceService(Construct):
    """One model-serving service of one environment, with its external route (`routing.route`)."""

    def __init__(self, scope: Construct, id: str, *, env: Environment, service: str) -> None:
        super().__init__(scope, id)
        spec, overlay = env.platform.services[service], env.overlay.services[service]
        svc = names.ServiceNames(service)
        common = names.common(platform=env.platform.name, name=service, component="inference")
        meta = Meta(namespace=env.namespace, labels=common, wave=WAVE_SERVICES)
        service_account(self, meta=meta, name=svc.service_account)
        secrets = [("api-keys", svc.api_keys, spec.api_keys, API_KEYS_KEY)]
        if spec.metrics_token is not None and scraped(env, spec):
            secrets.append(("metrics-token", svc.metrics_token, spec.metrics_token, METRICS_TOKEN_KEY))
        for secret_id, name, ref, key in secrets:
            store = env.overlay.secret_store
            external_secret(
                self, secret_id, meta=meta.at(WAVE_DATA), name=name, store=store, ref=ref, key=key
            )
        if overlay.identity is not None:
            ident = overlay.identity
            identity.jwks_source(self, meta=meta.at(WAVE_DATA), env=env, service=service, identity=ident)
        image = f"{spec.image}@{overlay.image_digest}"
        stable = PodProps(
            env=env,
            version=svc.stable,
            overlay=overlay,
            image=image,
            use_cache=spec.use_cache,
            models=tuple(spec.models),
            jobs=env.overlay.jobs.enabled,
            metrics_token=scraped(env, spec),
        )
        replicas = overlay.replicas if overlay.autoscaling is None else None
        scaling = overlay.autoscaling
        service_version(
            self, meta=meta, pod=stable, models=spec.models, replicas=replicas, autoscaling=scaling
        )
        budget = k8s.PodDisruptionBudgetSpec(
            max_unavailable=port(1),
            selector=k8s.LabelSelector(match_labels=svc.stable.selector),
            unhealthy_pod_eviction_policy="AlwaysAllow",
        )
        k8s.KubePodDisruptionBudget(self, "disruption-budget", metadata=meta.l1(service), spec=budget)
        if isinstance(overlay.model_delivery, PvcModels):
            model_cache(self, meta=meta.at(WAVE_DATA), name=svc.model_cache, delivery=overlay.model_delivery)
        if overlay.autoscaling is not None and env.overlay.runtime == "deployment":
            autoscaler(
                self,
                meta=meta,
                name=service,
                namespace=env.namespace,
                target=svc.stable.name,
                autoscaling=overlay.autoscaling,
            )
        if scraped(env, spec):
            service_monitor(
                self, meta=meta, name=service, namespace=env.namespace, token_secret=svc.metrics_token
            )
        if overlay.canary is not None:
            canary = overlay.canary
            pod = PodProps(
                env=env,
                version=svc.canary,
                overlay=overlay,
                image=f"{spec.image}@{canary.image_digest}",
                use_cache=spec.use_cache,
                models=tuple(canary.models),
                jobs=env.overlay.jobs.enabled,
                metrics_token=scraped(env, spec),
            )
            service_version(self, meta=meta, pod=pod, models=canary.models, replicas=canary.replicas)
        route(self, meta=meta, env=env, service=service)


def model_cache(scope: Construct, *, meta: Meta, name: str, delivery: PvcModels) -> None:
    """The model-cache PVC; never pruned by Argo CD (a re-sync must not throw the cache away)."""
    spec = k8s.PersistentVolumeClaimSpec(
        access_modes=[delivery.access_mode],
        storage_class_name=delivery.storage_class,
        resources=k8s.VolumeResourceRequirements(requests={"storage": quantity(delivery.size)}),
    )
    k8s.KubePersistentVolumeClaim(scope, "model-cache", metadata=meta.l1(name, annotations=KEEP), spec=spec)


def autoscaler(
    scope: Construct, *, meta: Meta, name: str, namespace: str, target: str, autoscaling: Autoscaling
) -> None:
    """An HPA (autoscaling/v2) or a KEDA ScaledObject scaling Deployment `target` (whose pods its Service of
    the same name selects) on the overlay's signal: CPU utilization, or a load signal from Prometheus."""
    if autoscaling.engine == "hpa":
        utilization = k8s.MetricTargetV2(
            type="Utilization", average_utilization=autoscaling.target_cpu_utilization
        )
        hpa = k8s.HorizontalPodAutoscalerSpecV2(
            scale_target_ref=k8s.CrossVersionObjectReferenceV2(
                api_version="apps/v1", kind="Deployment", name=target
            ),
            min_replicas=autoscaling.min_replicas,
            max_replicas=autoscaling.max_replicas,
            metrics=[
                k8s.MetricSpecV2(
                    type="Resource", resource=k8s.ResourceMetricSourceV2(name="cpu", target=utilization)
                )
            ],
            behavior=k8s.HorizontalPodAutoscalerBehaviorV2(
                scale_down=k8s.HpaScalingRulesV2(stabilization_window_seconds=300)
            ),
        )
        k8s.KubeHorizontalPodAutoscalerV2(scope, "autoscaler", metadata=meta.l1(name), spec=hpa)
        return
    fallback = None
    if autoscaling.signal == "cpu":
        trigger = keda.ScaledObjectSpecTriggers(
            type="cpu", metric_type="Utilization", metadata={"value": str(autoscaling.target_cpu_utilization)}
        )
    else:
        trigger = keda.ScaledObjectSpecTriggers(
            type="prometheus",
            metric_type="AverageValue",  # the query's total over the pods: KEDA divides it by the replicas
            metadata={
                "serverAddress": autoscaling.prometheus_address,
                "query": load_query(autoscaling, namespace=namespace, service=target),
                "threshold": f"{autoscaling.target:g}",
            },
        )
        # Prometheus unreadable three polls in a row: hold the current count (never below minReplicas)
        # rather than scale on no data.
        fallback = keda.ScaledObjectSpecFallback(
            failure_threshold=3,
            replicas=autoscaling.min_replicas,
            behavior=keda.ScaledObjectSpecFallbackBehavior.CURRENT_REPLICAS_IF_HIGHER,
        )
    scaled = keda.ScaledObjectSpec(
        scale_target_ref=keda.ScaledObjectSpecScaleTargetRef(
            api_version="apps/v1", kind="Deployment", name=target
        ),
        min_replica_count=autoscaling.min_replicas,
        max_replica_count=autoscaling.max_replicas,
        fallback=fallback,
        triggers=[trigger],
    )
    keda.ScaledObject(scope, "autoscaler", metadata=meta.api(name), spec=scaled)


def load_query(autoscaling: Autoscaling, *, namespace: str, service: str) -> str:
    """The PromQL of a load signal: its total over the pods behind Service `service` (the Prometheus
    Operator labels each target with its Service's `namespace` and `service`), over RATE_WINDOW."""
    series = "sum" if autoscaling.signal == "inFlight" else "count"
    selector = f'namespace="{namespace}",service="{service}",{LOAD_LABEL}!=""'
    return f"sum(rate({LOAD_METRIC}_{series}{{{selector}}}[{RATE_WINDOW}]))"


def service_monitor(
    scope: Construct, *, meta: Meta, name: str, namespace: str, token_secret: str | None = None
) -> None:
    """Prometheus scrapes every version of `name` on the named port (one ServiceMonitor); with
    `token_secret`, sending the scraper's token from that Secret (a service's `/metrics` names the models:
    never anonymous; a job worker's is reachable by the scraper alone, by NetworkPolicy)."""
    authorization = None
    if token_secret is not None:
        authorization = monitoring.ServiceMonitorSpecEndpointsAuthorization(
            type="Bearer",
            credentials=monitoring.ServiceMonitorSpecEndpointsAuthorizationCredentials(
                name=token_secret, key=METRICS_TOKEN_KEY
            ),
        )
    spec = monitoring.ServiceMonitorSpec(
        selector=monitoring.ServiceMonitorSpecSelector(match_labels=names.select(name)),
        namespace_selector=monitoring.ServiceMonitorSpecNamespaceSelector(match_names=[namespace]),
        endpoints=[
            monitoring.ServiceMonitorSpecEndpoints(
                port=HTTP_PORT,
                path=METRICS_PATH,
                interval=SCRAPE_INTERVAL,
                authorization=authorization,
            )
        ],
    )
    monitoring.ServiceMonitor(scope, "monitor", metadata=meta.api(name), spec=spec)
