"""An inference service: ServiceAccount, API-key ExternalSecret, one `service_version` per track (ConfigMap,
Deployment, Service), autoscaler (HPA or KEDA), PodDisruptionBudget, optional ServiceMonitor, model cache PVC,
and its route (Ingress or HTTPRoute).

cdk8s-plus L2 constructs make the ServiceAccount and the ConfigMaps. The Deployment and Service are the k8s
L1 classes: cdk8s-plus's Deployment cannot express what these pods need (ephemeral-storage in Mi, GPU
extended resources, topologySpreadConstraints, nodeSelector, probes on the named port), and its Service
targets port numbers only, where ours targets the container port by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import cdk8s_plus_33 as kplus
from cdk8s_plus_33 import k8s
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
from mlplatform.components.monitoring import SCRAPE_SECONDS, service_monitor
from mlplatform.components.pods import PodProps, pod_template
from mlplatform.components.routing import route
from mlplatform.components.secrets import external_secret
from mlplatform.components.settings import SettingsProps, api_settings
from mlplatform.runtime_contract import (
    API_KEYS_FILE,
    GRPC_PORT,
    GRPC_PORT_NAME,
    HTTP_PORT_NAME,
    INFERENCE_PORT,
    LOAD_LABEL,
    LOAD_METRIC,
    METRICS_TOKEN_FILE,
)

if TYPE_CHECKING:
    from mlplatform.schema.catalog import RemoteSource
    from mlplatform.schema.overlay import (
        Autoscaling,
        GatewayRouting,
        IngressRouting,
        PvcModels,
        ServiceOverlay,
    )
    from mlplatform.schema.platform import Model, Service

#: The load signals' rate() window: four scrapes, so one missed scrape still leaves a rate.
RATE_WINDOW = f"{4 * SCRAPE_SECONDS}s"
H2C = "kubernetes.io/h2c"  # the gRPC Service port's appProtocol: HTTP/2 over cleartext


@dataclass(frozen=True, kw_only=True, slots=True)
class ServiceProps:
    """What one service of one environment needs (`mlplatform.chart.service_props` builds it)."""

    name: str
    namespace: str
    platform: str
    #: The ClusterSecretStore its ExternalSecrets read.
    secret_store: str
    spec: Service
    overlay: ServiceOverlay
    #: The stable version's settings (the canary's differ in their models only).
    settings: SettingsProps
    routing: IngressRouting | GatewayRouting
    #: The runtime is KServe's (`runtime: kserve` or `kserve-serverless`), not Deployments.
    kserve: bool
    #: ... and on Knative (`runtime: kserve-serverless`): one Serverless InferenceService per service.
    serverless: bool = False
    #: The overlay enables jobs: the pods mount the jobs Redis's password.
    jobs: bool
    topology_spread: bool
    #: The stable and canary versions' models fetched by the model-source init container, and the catalog
    #: sha256 of each (pods.PodProps).
    remote: tuple[tuple[Model, RemoteSource], ...] = ()
    canary_remote: tuple[tuple[Model, RemoteSource], ...] = ()
    remote_sha256: Mapping[tuple[str, str], str]
    #: The JWKS file's content where this service renders its issuer's JWKS ConfigMap.
    jwks_file: str | None = None

    @property
    def scraped(self) -> bool:
        """A ServiceMonitor scrapes the service, with its token."""
        return self.settings.metrics_token

    @property
    def grpc(self) -> bool:
        return self.settings.grpc

    def stable_pod(self) -> PodProps:
        """The stable version's pods."""
        spec, overlay = self.spec, self.overlay
        return PodProps(
            platform=self.platform,
            version=names.ServiceNames(self.name).stable,
            overlay=overlay,
            image=f"{spec.image}@{overlay.image_digest}",
            use_cache=spec.use_cache,
            remote=self.remote,
            remote_sha256=self.remote_sha256,
            grpc=self.grpc,
            topology_spread=self.topology_spread,
            jobs=self.jobs,
            metrics_token=self.scraped,
            knative=self.serverless,
        )

    def canary_pod(self) -> PodProps:
        """The canary version's pods: the stable version's, with the canary's image and models."""
        canary = self.overlay.canary
        if canary is None:
            raise ValueError(f"{self.name}: no canary")
        return replace(
            self.stable_pod(),
            version=names.ServiceNames(self.name).canary,
            image=f"{self.spec.image}@{canary.image_digest}",
            remote=self.canary_remote,
        )

    def canary_settings(self) -> SettingsProps:
        """The canary version's settings: the stable version's, with the canary's models."""
        canary = self.overlay.canary
        if canary is None:
            raise ValueError(f"{self.name}: no canary")
        return replace(self.settings, models=tuple(canary.models))

    def worker_pod(self) -> PodProps:
        """The job worker's pods: the stable version's image and models, the jobs Redis, no gRPC or token."""
        worker = replace(self.stable_pod(), grpc=False, metrics_token=False, jobs=True, worker=True)
        return replace(worker, knative=False)  # a Deployment of ours, whatever the runtime


def version_config(scope: Construct, *, meta: Meta, pod: PodProps, settings: SettingsProps) -> None:
    """One version's ConfigMap of settings, and of its access policy where it has an identity."""
    version = pod.version
    kplus.ConfigMap(
        scope, f"{version.track}-config", metadata=meta.api(version.config), data=api_settings(settings)
    )
    if pod.overlay.identity is not None:
        identity.version_config(scope, meta=meta, version=version, identity=pod.overlay.identity)


def serverless_versions(scope: Construct, *, meta: Meta, props: ServiceProps) -> None:
    """`runtime: kserve-serverless`: each version's ConfigMaps (the revision that keeps the rest of the
    traffic still reads the stable version's) and one InferenceService running the latest version: the
    canary's pods while there is a canary, with its weight as KServe's canaryTrafficPercent."""
    overlay = props.overlay
    latest = props.stable_pod()
    version_config(scope, meta=meta, pod=latest, settings=props.settings)
    if overlay.canary is not None:
        latest = props.canary_pod()
        version_config(scope, meta=meta, pod=latest, settings=props.canary_settings())
    kserve.serverless_service(
        scope,
        meta=meta,
        version=names.ServiceNames(props.name).stable,
        template=pod_template(latest),
        replicas=overlay.replicas,
        autoscaling=overlay.autoscaling,
        canary_percent=overlay.canary.weight if overlay.canary is not None else None,
    )


def service_version(
    scope: Construct,
    *,
    meta: Meta,
    pod: PodProps,
    settings: SettingsProps,
    replicas: int | None,
    autoscaling: Autoscaling | None = None,
    kserve_cluster_local: bool | None = None,
) -> None:
    """One version (stable or canary) of a service: its ConfigMap, Deployment and Service (with
    `kserve_cluster_local` set, the runtime is KServe's: its ConfigMap and an InferenceService, whose
    controller makes the rest).

    `replicas=None` leaves the count to an autoscaler (the Deployment then carries none). A function, not a
    construct: each construct is a round trip to cdk8s's Node process, and this one would add nothing else.
    """
    version = pod.version
    track = version.track
    version_config(scope, meta=meta, pod=pod, settings=settings)
    if kserve_cluster_local is not None:
        kserve.inference_service(
            scope,
            meta=meta,
            version=version,
            template=pod_template(pod),
            replicas=replicas,
            autoscaling=autoscaling,
            cluster_local=kserve_cluster_local,
        )
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
        k8s.ServicePort(
            name=HTTP_PORT_NAME, port=INFERENCE_PORT, target_port=port(HTTP_PORT_NAME), protocol="TCP"
        )
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


def credentials(scope: Construct, *, meta: Meta, props: ServiceProps) -> None:
    """The ExternalSecrets of the API keys and the scraper's token, and the JWKS's source."""
    spec, svc = props.spec, names.ServiceNames(props.name)
    secrets = [("api-keys", svc.api_keys, spec.api_keys, API_KEYS_FILE)]
    if spec.metrics_token is not None and props.scraped:
        secrets.append(("metrics-token", svc.metrics_token, spec.metrics_token, METRICS_TOKEN_FILE))
    for secret_id, name, ref, key in secrets:
        external_secret(scope, secret_id, meta=meta, name=name, store=props.secret_store, ref=ref, key=key)
    if props.overlay.identity is not None:
        identity.jwks_source(
            scope,
            meta=meta,
            service=props.name,
            identity=props.overlay.identity,
            secret_store=props.secret_store,
            jwks_file=props.jwks_file,
        )


class InferenceService(Construct):
    """One model-serving service of one environment, with its external route (`routing.route`)."""

    def __init__(self, scope: Construct, id: str, *, props: ServiceProps) -> None:
        super().__init__(scope, id)
        service, overlay = props.name, props.overlay
        svc = names.ServiceNames(service)
        common = names.common(platform=props.platform, name=service, component="inference")
        meta = Meta(namespace=props.namespace, labels=common, wave=WAVE_SERVICES)
        service_account(self, meta=meta, name=svc.service_account)
        credentials(self, meta=meta.at(WAVE_DATA), props=props)
        stable = props.stable_pod()
        replicas = overlay.replicas if overlay.autoscaling is None else None
        cluster_local = props.routing.made_by != "kserve" if props.kserve else None
        if props.serverless:
            serverless_versions(self, meta=meta, props=props)
        else:
            service_version(
                self,
                meta=meta,
                pod=stable,
                settings=props.settings,
                replicas=replicas,
                autoscaling=overlay.autoscaling,
                kserve_cluster_local=cluster_local,
            )
        budget = k8s.PodDisruptionBudgetSpec(
            max_unavailable=port(1),
            selector=k8s.LabelSelector(match_labels=svc.stable.selector),
            unhealthy_pod_eviction_policy="AlwaysAllow",
        )
        k8s.KubePodDisruptionBudget(self, "disruption-budget", metadata=meta.l1(service), spec=budget)
        if overlay.model_delivery.source == "pvc":
            model_cache(self, meta=meta.at(WAVE_DATA), name=svc.model_cache, delivery=overlay.model_delivery)
        if overlay.autoscaling is not None and not props.kserve:
            autoscaler(
                self,
                meta=meta,
                name=service,
                namespace=props.namespace,
                target=svc.stable.name,
                autoscaling=overlay.autoscaling,
            )
        if props.scraped:
            service_monitor(
                self, meta=meta, name=service, namespace=props.namespace, token_secret=svc.metrics_token
            )
        if overlay.canary is not None and not props.serverless:  # Knative's revisions are its canary
            service_version(
                self,
                meta=meta,
                pod=props.canary_pod(),
                settings=props.canary_settings(),
                replicas=overlay.canary.replicas,
                kserve_cluster_local=cluster_local,
            )
        route(
            self,
            meta=meta,
            service=service,
            overlay=overlay,
            routing=props.routing,
            kserve=props.kserve,
            grpc=props.grpc,
        )


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
