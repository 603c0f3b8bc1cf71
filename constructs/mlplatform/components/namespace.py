"""The namespace baseline: Namespace with restricted Pod Security Admission, ResourceQuota, LimitRange."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cdk8s
import cdk8s_plus_33 as kplus
from cdk8s_plus_33 import k8s

from constructs import Construct
from mlplatform import names
from mlplatform.components.base import KEEP_NAMESPACE, WAVE_ANNOTATION, WAVE_NAMESPACE, Meta, quantities

if TYPE_CHECKING:
    from mlplatform.schema.overlay import Quota

PSA_LEVEL = "restricted"
PSA_VERSION = "v1.33"  # v + tools/versions.env KUBERNETES_VERSION (tests/tools/test_kubernetes_minor.py)
CONTAINER_DEFAULTS = {"cpu": "500m", "ephemeral-storage": "256Mi", "memory": "256Mi"}
CONTAINER_DEFAULT_REQUESTS = {"cpu": "100m", "ephemeral-storage": "64Mi", "memory": "128Mi"}


def psa_labels() -> dict[str, str]:
    """Pod Security Admission `restricted`, pinned to the targeted Kubernetes minor, in every mode."""
    labels = {}
    for mode in ("enforce", "audit", "warn"):
        labels[f"pod-security.kubernetes.io/{mode}"] = PSA_LEVEL
        labels[f"pod-security.kubernetes.io/{mode}-version"] = PSA_VERSION
    return labels


def quota_hard(quota: Quota) -> dict[str, str]:
    hard = {
        "limits.cpu": quota.limits_cpu,
        "limits.ephemeral-storage": quota.limits_ephemeral_storage,
        "limits.memory": quota.limits_memory,
        "persistentvolumeclaims": str(quota.persistent_volume_claims),
        "pods": str(quota.pods),
        "requests.cpu": quota.requests_cpu,
        "requests.ephemeral-storage": quota.requests_ephemeral_storage,
        "requests.memory": quota.requests_memory,
        "requests.storage": quota.requests_storage,
        "requests.nvidia.com/gpu": str(quota.requests_gpu),
    }
    return dict(sorted(hard.items()))


class NamespaceBaseline(Construct):
    """Namespace (restricted PSA, pinned to v1.33), ResourceQuota and LimitRange of one environment. `mesh`:
    the namespace also has Istio inject its sidecar into every pod (istio-cni keeps them restricted)."""

    def __init__(
        self, scope: Construct, id: str, *, namespace: str, platform: str, quota: Quota, mesh: bool = False
    ) -> None:
        super().__init__(scope, id)
        common = names.common(platform=platform, name=platform, component="namespace")
        managed = {names.MANAGED_NAMESPACE: names.MANAGED_NAMESPACE_VALUE}
        if mesh:
            managed |= names.MESH_INJECTION
        kplus.Namespace(
            self,
            "namespace",
            metadata=cdk8s.ApiObjectMetadata(
                name=namespace,
                labels=common | psa_labels() | managed,
                annotations={WAVE_ANNOTATION: WAVE_NAMESPACE, **KEEP_NAMESPACE},
            ),
        )
        meta = Meta(namespace=namespace, labels=common, wave=WAVE_NAMESPACE)
        k8s.KubeResourceQuota(
            self,
            "quota",
            metadata=meta.l1(names.RESOURCE_QUOTA),
            spec=k8s.ResourceQuotaSpec(hard=quantities(quota_hard(quota))),
        )
        defaults = k8s.LimitRangeItem(
            type="Container",
            default=quantities(CONTAINER_DEFAULTS),
            default_request=quantities(CONTAINER_DEFAULT_REQUESTS),
        )
        k8s.KubeLimitRange(
            self,
            "limits",
            metadata=meta.l1(names.LIMIT_RANGE),
            spec=k8s.LimitRangeSpec(limits=[defaults]),
        )
