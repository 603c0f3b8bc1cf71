"""The namespace baseline: Namespace with restricted Pod Security Admission, ResourceQuota, LimitRange."""

from __future__ import annotations

from typing import Any

from constructs import Construct
from mlplatform import labels
from mlplatform.components.base import WAVE_NAMESPACE, Component, metadata
from mlplatform.spec import Environment

PSA_LEVEL = "restricted"
PSA_VERSION = "v1.33"


def namespace_manifests(env: Environment) -> list[dict[str, Any]]:
    ns = env.namespace
    common = labels.common(platform=env.platform.name, name=env.platform.name, component="namespace")
    psa = {}
    for mode in ("enforce", "audit", "warn"):
        psa[f"pod-security.kubernetes.io/{mode}"] = PSA_LEVEL
        psa[f"pod-security.kubernetes.io/{mode}-version"] = PSA_VERSION
    managed = {labels.MANAGED_NAMESPACE: labels.MANAGED_NAMESPACE_VALUE}
    quota = env.overlay.quota
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
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": metadata(name=ns, namespace=None, labels=common | psa | managed, wave=WAVE_NAMESPACE),
        },
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": metadata(name="compute", namespace=ns, labels=common, wave=WAVE_NAMESPACE),
            "spec": {"hard": dict(sorted(hard.items()))},
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": metadata(name="container-defaults", namespace=ns, labels=common, wave=WAVE_NAMESPACE),
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": "500m", "ephemeral-storage": "256Mi", "memory": "256Mi"},
                        "defaultRequest": {"cpu": "100m", "ephemeral-storage": "64Mi", "memory": "128Mi"},
                    }
                ]
            },
        },
    ]


class NamespaceBaseline(Component):
    """Namespace (restricted PSA, pinned to v1.33), ResourceQuota and LimitRange of one environment."""

    def __init__(self, scope: Construct, id: str, *, env: Environment) -> None:
        super().__init__(scope, id)
        for manifest in namespace_manifests(env):
            self.emit(manifest)
