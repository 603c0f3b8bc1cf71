"""An inference service: ServiceAccount, ConfigMap, API-key ExternalSecret, Deployment(s), Service(s),
autoscaler (HPA or KEDA), PodDisruptionBudget, optional ServiceMonitor, model-cache PVC and canary."""

from __future__ import annotations

from typing import Any

from constructs import Construct
from mlplatform import labels
from mlplatform.components.base import (
    NO_PRUNE,
    WAVE_DATA,
    WAVE_SERVICES,
    Component,
    container_security_context,
    metadata,
    pod_security_context,
    service_account,
)
from mlplatform.components.redis import AUTH_SECRET
from mlplatform.components.redis import NAME as REDIS_NAME
from mlplatform.components.secrets import external_secret
from mlplatform.spec import Environment
from mlplatform.spec.overlay import PvcModels, ServiceOverlay
from mlplatform.spec.platform import INFERENCE_PORT, REDIS_PORT, Model, Service, Tuning

APP_UID = 10001
MODEL_DIR = "/models"
REDIS_PASSWORD_DIR = "/var/run/secrets/redis"  # noqa: S105  (a mount path, not a password)
API_KEYS_DIR = "/var/run/secrets/inference"
STABLE = "stable"
CANARY = "canary"
# Probe budgets: startup allows 5 minutes for loading and warming the models; after that readiness reacts
# within 15 s and liveness restarts a hung process after 30 s.
STARTUP_PROBE = {"periodSeconds": 5, "failureThreshold": 60, "timeoutSeconds": 3}
READINESS_PROBE = {"periodSeconds": 5, "failureThreshold": 3, "timeoutSeconds": 3}
LIVENESS_PROBE = {"periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 3}
INIT_RESOURCES = {
    "limits": {"cpu": "500m", "ephemeral-storage": "64Mi", "memory": "256Mi"},
    "requests": {"cpu": "100m", "ephemeral-storage": "64Mi", "memory": "256Mi"},
}


def settings(
    env: Environment, *, service: Service, overlay: ServiceOverlay, models: list[Model]
) -> dict[str, str]:
    """INFERENCE_* settings of the runtime contract (README)."""
    data = {
        "INFERENCE_MODEL_REPOSITORY": MODEL_DIR,
        "INFERENCE_MODELS": ",".join(f"{m.name}:{m.version}" for m in models),
        "INFERENCE_API_KEYS_FILE": f"{API_KEYS_DIR}/api-keys",
    }
    if service.use_cache:
        data["INFERENCE_REDIS_URL"] = f"redis://{REDIS_NAME}:{REDIS_PORT}/0"
        data["INFERENCE_REDIS_PASSWORD_FILE"] = f"{REDIS_PASSWORD_DIR}/password"
    tuning = _merge(service.tuning, overlay.tuning)
    if tuning.cache_ttl_seconds is not None:
        data["INFERENCE_CACHE_TTL_SECONDS"] = str(tuning.cache_ttl_seconds)
    if tuning.max_batch_size is not None:
        data["INFERENCE_MAX_BATCH_SIZE"] = str(tuning.max_batch_size)
    if tuning.max_batch_wait_ms is not None:
        data["INFERENCE_MAX_BATCH_WAIT_MS"] = str(tuning.max_batch_wait_ms)
    if tuning.ort_intra_op_threads is not None:
        data["INFERENCE_ORT_INTRA_OP_THREADS"] = str(tuning.ort_intra_op_threads)
    if tuning.execution_providers is not None:
        data["INFERENCE_EXECUTION_PROVIDERS"] = ",".join(tuning.execution_providers)
    return dict(sorted(data.items()))


def _merge(base: Tuning, override: Tuning) -> Tuning:
    values = base.model_dump(by_alias=True, exclude_none=True)
    values.update(override.model_dump(by_alias=True, exclude_none=True))
    return Tuning.model_validate(values)


def _http_probe(path: str, budget: dict[str, int]) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http", "scheme": "HTTP"}, **budget}


def pod_template(
    env: Environment,
    *,
    name: str,
    track: str,
    service: Service,
    overlay: ServiceOverlay,
    image: str,
    config: str,
) -> dict[str, Any]:
    """The pod template of one version (stable or canary) of a service."""
    pod_labels = labels.common(platform=env.platform.name, name=name, component="inference") | {
        labels.TRACK: track
    }
    gpu = overlay.gpu
    extra = {gpu.resource_name: str(gpu.count)} if gpu else None
    mounts: list[dict[str, Any]] = [
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108  (the one writable path of the runtime contract)
        {"name": "api-keys", "mountPath": API_KEYS_DIR, "readOnly": True},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": overlay.resources.limits.ephemeral_storage}},
        {
            "name": "api-keys",
            "secret": {
                "secretName": f"{name}-api-keys",
                "defaultMode": 0o440,
                "items": [{"key": "api-keys", "path": "api-keys"}],
            },
        },
    ]
    if service.use_cache:
        mounts.append({"name": "redis-password", "mountPath": REDIS_PASSWORD_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "redis-password",
                "secret": {
                    "secretName": AUTH_SECRET,
                    "defaultMode": 0o440,
                    "items": [{"key": "password", "path": "password"}],
                },
            }
        )
    init_containers = []
    delivery = overlay.model_delivery
    if isinstance(delivery, PvcModels):
        mounts.append({"name": "models", "mountPath": MODEL_DIR, "readOnly": True})
        volumes.append({"name": "models", "persistentVolumeClaim": {"claimName": f"{name}-model-cache"}})
        init_containers.append(_model_fetch(delivery))
    container = {
        "name": "inference",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": INFERENCE_PORT, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": config}}],
        "resources": overlay.resources.as_k8s(extra_requests=extra),
        "securityContext": container_security_context(APP_UID),
        "startupProbe": _http_probe("/v2/health/ready", STARTUP_PROBE),
        "readinessProbe": _http_probe("/v2/health/ready", READINESS_PROBE),
        "livenessProbe": _http_probe("/v2/health/live", LIVENESS_PROBE),
        "volumeMounts": mounts,
    }
    spec: dict[str, Any] = {
        "serviceAccountName": name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(APP_UID),
        "terminationGracePeriodSeconds": 30,
    }
    if init_containers:
        spec["initContainers"] = init_containers
    spec["containers"] = [container]
    spec["volumes"] = volumes
    if gpu:
        spec["nodeSelector"] = dict(sorted(gpu.node_selector.items()))
        spec["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in gpu.tolerations]
    if env.overlay.features.topology_spread:
        selector = {"matchLabels": labels.select_track(name, track)}
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": key,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": selector,
            }
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        ]
    return {"metadata": {"labels": pod_labels}, "spec": spec}


def _model_fetch(delivery: PvcModels) -> dict[str, Any]:
    """Init container: copy the models out of the pinned model image into the cache PVC, once per digest."""
    marker = f"/mnt/models/.complete-{delivery.image.rsplit(':', 1)[1][:12]}"
    script = f"set -eu; if [ ! -f {marker} ]; then cp -R {delivery.path}/. /mnt/models/ && touch {marker}; fi"
    return {
        "name": "model-fetch",
        "image": delivery.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
        "resources": INIT_RESOURCES,
        "securityContext": container_security_context(APP_UID),
        "volumeMounts": [{"name": "models", "mountPath": "/mnt/models"}],
    }


def inference_manifests(env: Environment, name: str) -> list[dict[str, Any]]:
    ns = env.namespace
    service = env.platform.services[name]
    overlay = env.overlay.services[name]
    common = labels.common(platform=env.platform.name, name=name, component="inference")

    def meta(obj_name: str, *, wave: str = WAVE_SERVICES, annotations: dict[str, str] | None = None) -> Any:
        return metadata(name=obj_name, namespace=ns, labels=common, wave=wave, annotations=annotations)

    autoscaling = overlay.autoscaling
    stable_template = pod_template(
        env,
        name=name,
        track=STABLE,
        service=service,
        overlay=overlay,
        image=f"{service.image}@{overlay.image_digest}",
        config=f"{name}-config",
    )
    deployment_spec: dict[str, Any] = {}
    if autoscaling is None:
        deployment_spec["replicas"] = overlay.replicas
    deployment_spec |= {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": labels.select_track(name, STABLE)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": stable_template,
    }
    manifests: list[dict[str, Any]] = [
        service_account(name=name, namespace=ns, labels=common, wave=WAVE_SERVICES),
        external_secret(
            name=f"{name}-api-keys",
            namespace=ns,
            labels=common,
            wave=WAVE_DATA,
            store=env.overlay.secret_store,
            ref=service.api_keys,
            key="api-keys",
        ),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(f"{name}-config"),
            "data": settings(env, service=service, overlay=overlay, models=service.models),
        },
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name), "spec": deployment_spec},
        _service(meta(name), name=name, track=STABLE),
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(name),
            "spec": {
                "maxUnavailable": 1,
                "selector": {"matchLabels": labels.select_track(name, STABLE)},
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
            },
        },
    ]
    if isinstance(overlay.model_delivery, PvcModels):
        delivery = overlay.model_delivery
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": meta(f"{name}-model-cache", wave=WAVE_DATA, annotations=NO_PRUNE),
                "spec": {
                    "accessModes": [delivery.access_mode],
                    "storageClassName": delivery.storage_class,
                    "resources": {"requests": {"storage": delivery.size}},
                },
            }
        )
    if autoscaling is not None and autoscaling.engine == "hpa":
        manifests.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": meta(name),
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": autoscaling.min_replicas,
                    "maxReplicas": autoscaling.max_replicas,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {
                                    "type": "Utilization",
                                    "averageUtilization": autoscaling.target_cpu_utilization,
                                },
                            },
                        }
                    ],
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
                },
            }
        )
    elif autoscaling is not None:
        manifests.append(
            {
                "apiVersion": "keda.sh/v1alpha1",
                "kind": "ScaledObject",
                "metadata": meta(name),
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicaCount": autoscaling.min_replicas,
                    "maxReplicaCount": autoscaling.max_replicas,
                    "triggers": [
                        {
                            "type": "cpu",
                            "metricType": "Utilization",
                            "metadata": {"value": str(autoscaling.target_cpu_utilization)},
                        }
                    ],
                },
            }
        )
    if env.overlay.features.service_monitor:
        manifests.append(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "ServiceMonitor",
                "metadata": meta(name),
                "spec": {
                    "selector": {"matchLabels": labels.select(name)},
                    "namespaceSelector": {"matchNames": [ns]},
                    "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
                },
            }
        )
    if overlay.canary is not None:
        canary = overlay.canary
        canary_name = f"{name}-canary"
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": meta(f"{canary_name}-config"),
                "data": settings(env, service=service, overlay=overlay, models=canary.models),
            }
        )
        template = pod_template(
            env,
            name=name,
            track=CANARY,
            service=service,
            overlay=overlay,
            image=f"{service.image}@{canary.image_digest}",
            config=f"{canary_name}-config",
        )
        manifests.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": meta(canary_name),
                "spec": {
                    "replicas": canary.replicas,
                    "revisionHistoryLimit": 5,
                    "selector": {"matchLabels": labels.select_track(name, CANARY)},
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
                    },
                    "template": template,
                },
            }
        )
        manifests.append(_service(meta(canary_name), name=name, track=CANARY))
    return manifests


def _service(meta: dict[str, Any], *, name: str, track: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "ClusterIP",
            "selector": labels.select_track(name, track),
            "ports": [{"name": "http", "port": INFERENCE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


class InferenceService(Component):
    """One model-serving service of one environment."""

    def __init__(self, scope: Construct, id: str, *, env: Environment, name: str) -> None:
        super().__init__(scope, id)
        for manifest in inference_manifests(env, name):
            self.emit(manifest)
