"""The KServe runtimes: each version of a service as a KServe InferenceService (`runtime: kserve`), or each
service as one Serverless InferenceService on Knative (`runtime: kserve-serverless`, `serverless_service`).

Standard deployment mode (KServe's RawDeployment: a plain Deployment, Service and HPA or KEDA ScaledObject
made by the KServe controller, no Knative). The predictor is a custom container running our image: the pod
spec is the one `pods.pod_template` builds for the Deployment runtime (same container, V2 probes, restricted
security context, resources, volumes, model-fetch init container), carried over field by field into the typed
classes `cdk8s import` made from KServe's CRD (`mlplatform_crds.io.kserve.serving`).

Canary: KServe's `canaryTrafficPercent` is honoured by its Serverless (Knative) reconciler only; in
RawDeployment mode a changed predictor simply rolls out. So the canary is a second InferenceService
(`<service>-canary`) and the weighted split happens in the platform's HTTPRoute over the two predictor
Services, as for the Deployment runtime.

Routes, as the overlay chooses (`routing.madeBy`):
- `platform` (default): the overlay's Ingress or HTTPRoute points at the predictor Services, and the
  InferenceServices are labelled cluster-local, so KServe makes no Ingress or HTTPRoute of its own (a second,
  TLS-less way in otherwise).
- `kserve`: KServe's Gateway API integration makes the stable InferenceService's HTTPRoute on the Gateway its
  `inferenceservice-config` names; the InferenceService is not cluster-local and dist/ holds no route.
"""

from __future__ import annotations

import enum
import importlib
from typing import TYPE_CHECKING, Any

from cdk8s_plus_33 import k8s

from constructs import Construct
from mlplatform.components.base import Meta
from mlplatform.schema.overlay import KNATIVE_METRIC_OF

if TYPE_CHECKING:
    from mlplatform import names
    from mlplatform.schema.overlay import Autoscaling

#: KServe's annotations and label (pkg/constants in the pinned module).
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
RAW_DEPLOYMENT = "RawDeployment"  # "Standard" in KServe's docs
SERVERLESS = "Serverless"
#: Knative's annotations (knative.dev/serving pkg/apis/autoscaling and pkg/apis/serving, the pinned module;
#: tests/tools/testcluster/test_serverless_environment.py reads them there). KServe writes min-scale,
#: max-scale and the metric from the predictor's minReplicas, maxReplicas and scaleMetric; the target (a
#: decimal: KServe's scaleTarget is a whole number) and the scale-down delay go as annotations.
KNATIVE_TARGET = "autoscaling.knative.dev/target"
KNATIVE_SCALE_DOWN_DELAY = "autoscaling.knative.dev/scale-down-delay"
QUEUE_SIDECAR = "queue.sidecar.serving.knative.dev/"
#: Knative's queue-proxy sidecar in every pod, sized (Knative's default is a 25m CPU request and nothing else,
#: which a LimitRange would then fill in) so the quota gate counts what runs: requests and limits.
QUEUE_PROXY_RESOURCES = {
    "cpu-resource-request": "25m",
    "cpu-resource-limit": "500m",
    "memory-resource-request": "64Mi",
    "memory-resource-limit": "256Mi",
    "ephemeral-storage-resource-request": "64Mi",
    "ephemeral-storage-resource-limit": "256Mi",
}
AUTOSCALER_CLASS = "serving.kserve.io/autoscalerClass"
VISIBILITY = "networking.kserve.io/visibility"
CLUSTER_LOCAL = "cluster-local"
PREDICTOR = "InferenceServiceSpecPredictor"


def _serving() -> Any:
    """The imported KServe classes, loaded on first use (a large module: only kserve environments pay)."""
    return importlib.import_module("mlplatform_crds.io.kserve.serving")


def _pascal(field: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in field.split("_"))


def _scalar(serving: Any, cls: str, value: Any) -> Any:
    """A k8s Quantity or IntOrString as the imported class of the same place (`from_string`/`from_number`)."""
    raw = value.value
    target = getattr(serving, cls)
    return target.from_number(raw) if isinstance(raw, int | float) else target.from_string(raw)


def _convert(serving: Any, cls: str, value: Any) -> Any:
    """A k8s struct (and everything under it) as the imported KServe struct at the same place of the schema.

    `cdk8s import` names the class of each nested field after its path
    (`...PredictorContainersSecurityContext`), so the class of a field is the parent's name plus the field's.
    """
    if isinstance(value, list):
        return [_convert(serving, cls, item) for item in value]
    if isinstance(value, k8s.Quantity | k8s.IntOrString):
        return _scalar(serving, cls, value)
    if isinstance(value, dict):
        return {key: _convert(serving, cls, item) for key, item in value.items()}
    fields = getattr(value, "_values", None)
    if fields is None or isinstance(value, enum.Enum):
        return value
    target = getattr(serving, cls)
    return target(**{f: _convert(serving, cls + _pascal(f), v) for f, v in fields.items() if v is not None})


def _scaling(
    serving: Any, replicas: int | None, autoscaling: Autoscaling | None
) -> tuple[str, dict[str, Any]]:
    """The autoscaler class annotation and the predictor's replica fields."""
    if autoscaling is None:
        count = replicas or 1
        return "none", {"min_replicas": count, "max_replicas": count}
    bounds = {"min_replicas": autoscaling.min_replicas, "max_replicas": autoscaling.max_replicas}
    if autoscaling.engine == "hpa":
        cpu = serving.InferenceServiceSpecPredictorScaleMetric.CPU
        kind = serving.InferenceServiceSpecPredictorScaleMetricType.UTILIZATION
        scale = {"scale_metric": cpu, "scale_metric_type": kind}
        return "hpa", bounds | scale | {"scale_target": autoscaling.target_cpu_utilization}
    target = serving.InferenceServiceSpecPredictorAutoScalingMetricsResourceTarget(
        type=serving.InferenceServiceSpecPredictorAutoScalingMetricsResourceTargetType.UTILIZATION,
        average_utilization=autoscaling.target_cpu_utilization,
    )
    metric = serving.InferenceServiceSpecPredictorAutoScalingMetrics(
        type=serving.InferenceServiceSpecPredictorAutoScalingMetricsType.RESOURCE,
        resource=serving.InferenceServiceSpecPredictorAutoScalingMetricsResource(
            name=serving.InferenceServiceSpecPredictorAutoScalingMetricsResourceName.CPU, target=target
        ),
    )
    scaling = serving.InferenceServiceSpecPredictorAutoScaling(metrics=[metric])
    return "keda", bounds | {"auto_scaling": scaling}


def _from_template(
    serving: Any, template: k8s.PodTemplateSpec
) -> tuple[dict[str, Any], dict[str, str], dict[str, str] | None]:
    """The predictor's pod fields (as KServe's classes), labels and annotations, from a pod template."""
    spec_fields = getattr(template.spec, "_values", {})
    predictor = {f: _convert(serving, PREDICTOR + _pascal(f), v) for f, v in spec_fields.items()}
    metadata = getattr(template.metadata, "_values", {})
    return predictor, metadata.get("labels", {}), metadata.get("annotations")


def _knative_scaling(
    serving: Any, replicas: int | None, autoscaling: Autoscaling | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The predictor's replica fields and Knative's annotations (`engine: knative`, or a fixed count)."""
    if autoscaling is None:
        count = replicas or 1
        return {"min_replicas": count, "max_replicas": count}, {}
    metric = getattr(
        serving.InferenceServiceSpecPredictorScaleMetric, KNATIVE_METRIC_OF[autoscaling.signal].upper()
    )
    fields = {
        "min_replicas": autoscaling.min_replicas,
        "max_replicas": autoscaling.max_replicas,
        "scale_metric": metric,
    }
    annotations = {KNATIVE_TARGET: f"{autoscaling.target:g}"}
    if autoscaling.scale_down_delay is not None:
        annotations[KNATIVE_SCALE_DOWN_DELAY] = autoscaling.scale_down_delay
    return fields, annotations


def serverless_service(
    scope: Construct,
    *,
    meta: Meta,
    version: names.Version,
    template: k8s.PodTemplateSpec,
    replicas: int | None,
    autoscaling: Autoscaling | None,
    canary_percent: int | None,
) -> None:
    """A service as one Serverless InferenceService: Knative makes a revision of `template` (the latest
    version's pods, `pods.pod_template` with `knative` on), scales it between the bounds (to zero where
    minReplicas is 0) and, with `canary_percent`, sends that share to it and the rest to the last revision
    that took all the traffic (KServe's canaryTrafficPercent). KServe makes the route (`routing.madeBy`)."""
    serving = _serving()
    predictor, labels, pod_annotations = _from_template(serving, template)
    scaling, knative = _knative_scaling(serving, replicas, autoscaling)
    queue = {QUEUE_SIDECAR + key: value for key, value in QUEUE_PROXY_RESOURCES.items()}
    annotations = dict(sorted(((pod_annotations or {}) | knative | queue).items()))
    canary = {} if canary_percent is None else {"canary_traffic_percent": canary_percent}
    spec = serving.InferenceServiceSpec(
        predictor=serving.InferenceServiceSpecPredictor(
            **predictor, **scaling, **canary, labels=labels, annotations=annotations
        )
    )
    metadata = meta.api(version.name, annotations={DEPLOYMENT_MODE: SERVERLESS})
    serving.InferenceService(scope, "serverless-inference-service", metadata=metadata, spec=spec)


def inference_service(
    scope: Construct,
    *,
    meta: Meta,
    version: names.Version,
    template: k8s.PodTemplateSpec,
    replicas: int | None,
    autoscaling: Autoscaling | None,
    cluster_local: bool,
) -> None:
    """One version (stable or canary) as an InferenceService running `template` (`pods.pod_template`'s);
    KServe makes its Deployment, Service and scaler. `cluster_local`: KServe makes no route of its own."""
    serving = _serving()
    predictor, labels, pod_annotations = _from_template(serving, template)
    autoscaler, scaling = _scaling(serving, replicas, autoscaling)
    strategy = k8s.DeploymentStrategy(
        type="RollingUpdate",
        rolling_update=k8s.RollingUpdateDeployment(
            max_surge=k8s.IntOrString.from_number(1), max_unavailable=k8s.IntOrString.from_number(0)
        ),
    )
    predictor["deployment_strategy"] = _convert(serving, PREDICTOR + "DeploymentStrategy", strategy)
    spec = serving.InferenceServiceSpec(
        predictor=serving.InferenceServiceSpecPredictor(
            **predictor, **scaling, labels=labels, annotations=pod_annotations
        )
    )
    visibility = {VISIBILITY: CLUSTER_LOCAL} if cluster_local else {}
    local = Meta(namespace=meta.namespace, labels=meta.labels | visibility, wave=meta.wave)
    annotations = {DEPLOYMENT_MODE: RAW_DEPLOYMENT, AUTOSCALER_CLASS: autoscaler}
    track = version.track
    metadata = local.api(version.name, annotations=annotations)
    serving.InferenceService(scope, f"{track}-inference-service", metadata=metadata, spec=spec)
