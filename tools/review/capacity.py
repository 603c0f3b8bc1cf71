"""What a namespace's workloads take at their minimum and at their maximum scale, against its ResourceQuota.

Counted as the gate's `quota-admits-max-scale` counts from the manifests: autoscaled workloads between the
HPA's minReplicas and maxReplicas or the ScaledObject's minReplicaCount (KEDA's default 0) and
maxReplicaCount (default 100), others at spec.replicas; at the maximum each Deployment also rolls out its
surge (testcluster's `surge_of`, the same reading of maxSurge). A pod counts its containers' sum, or its
largest init container where that is more, per resource, as the apiserver's quota admission does.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mlplatform.schema.quantity import parse
from review.objects import Key, pod_spec
from testcluster.workloads import KEDA_DEFAULT_MAX, surge_of

RESOURCES = ("cpu", "memory", "ephemeral-storage", "nvidia.com/gpu")
ROWS = (*(f"{kind}.{r}" for r in RESOURCES for kind in ("requests", "limits")), "pods")


@dataclass(frozen=True)
class Capacity:
    minimum: dict[str, Decimal]
    maximum: dict[str, Decimal]
    quota: dict[str, Decimal]  # the ResourceQuota's hard values, by key (requests.cpu, pods, ...)


def _amount(container: dict[str, Any], kind: str, resource: str) -> Decimal:
    return _q(((container.get("resources") or {}).get(kind) or {}).get(resource))


def _per_pod(pod: dict[str, Any]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for kind in ("requests", "limits"):
        for r in RESOURCES:
            total = sum(
                (
                    _q(((c.get("resources") or {}).get(kind) or {}).get(r))
                    for c in pod.get("containers") or []
                ),
                Decimal(0),
            )
            init = max(
                (
                    _q(((c.get("resources") or {}).get(kind) or {}).get(r))
                    for c in pod.get("initContainers") or []
                ),
                default=Decimal(0),
            )
            out[f"{kind}.{r}"] = max(total, init)
    out["pods"] = Decimal(1)
    return out


def _q(value: Any) -> Decimal:
    return parse(str(value)) if value is not None else Decimal(0)


def of(objects: dict[Key, dict[str, Any]]) -> Capacity:
    scale: dict[tuple[str, str], tuple[int, int]] = {}
    for (kind, _ns, _name), obj in objects.items():
        spec = obj.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        if kind == "HorizontalPodAutoscaler":
            scale[(str(ref.get("kind", "Deployment")), str(ref.get("name")))] = (
                int(spec.get("minReplicas", 1)),
                int(spec["maxReplicas"]),
            )
        elif kind == "ScaledObject":
            scale[(str(ref.get("kind", "Deployment")), str(ref.get("name")))] = (
                int(spec.get("minReplicaCount", 0)),
                int(spec.get("maxReplicaCount", KEDA_DEFAULT_MAX)),
            )
    low: dict[str, Decimal] = dict.fromkeys(ROWS, Decimal(0))
    high: dict[str, Decimal] = dict.fromkeys(ROWS, Decimal(0))
    quota: dict[str, Decimal] = {}
    for (kind, _ns, name), obj in sorted(objects.items()):
        spec = obj.get("spec") or {}
        if kind == "ResourceQuota" and not spec.get("scopes") and not spec.get("scopeSelector"):
            for k, v in (spec.get("hard") or {}).items():
                key = f"requests.{k}" if k in ("cpu", "memory", "ephemeral-storage") else str(k)
                quota[key] = quota.get(key, Decimal(0)) + _q(v)
        pod = pod_spec(obj)
        if pod is None or kind in {"CronJob", "Pod"}:
            continue
        if kind == "InferenceService":
            lo = int(pod.get("minReplicas", 1))
            hi = max(int(pod.get("maxReplicas", 0)), lo)
        elif (kind, name) in scale:
            lo, hi = scale[(kind, name)]
        else:
            lo = hi = int(spec.get("replicas", 1)) if kind != "Job" else int(spec.get("parallelism", 1))
        peak = hi + (surge_of(obj, hi) if kind == "Deployment" else 0)
        for k, v in _per_pod(pod).items():
            low[k] += v * lo
            high[k] += v * peak
    return Capacity(low, high, quota)


def show(key: str, value: Decimal) -> str:
    """A value as a reviewer reads it: cores, GiB/MiB, counts."""
    if key.endswith(("memory", "ephemeral-storage", "storage")):
        for unit, size in (("Gi", 2**30), ("Mi", 2**20)):
            if value >= size:
                return f"{_num(value / size)}{unit}"
        return _num(value)
    if key.endswith(".cpu"):
        return f"{_num(value * 1000)}m" if 0 < value < 1 else _num(value)
    return _num(value)


def _num(value: Decimal) -> str:
    rounded = round(value, 2)
    return f"{rounded:f}".rstrip("0").rstrip(".") if "." in f"{rounded:f}" else f"{rounded:f}"
