"""ExternalSecrets: the External Secrets Operator makes Secrets from a ClusterSecretStore; git has none."""

from __future__ import annotations

from typing import Any

from mlplatform.components.base import metadata
from mlplatform.spec.common import SecretRef


def external_secret(
    *,
    name: str,
    namespace: str,
    labels: dict[str, str],
    wave: str,
    store: str,
    ref: SecretRef,
    key: str,
    template: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An ExternalSecret that fills Secret `name` key `key` from `ref` (optionally through a template)."""
    target: dict[str, Any] = {"name": name, "creationPolicy": "Owner", "deletionPolicy": "Retain"}
    if template:
        target["template"] = {"engineVersion": "v2", "data": dict(template)}
    return {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": metadata(name=name, namespace=namespace, labels=labels, wave=wave),
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": store},
            "target": target,
            "data": [{"secretKey": key, "remoteRef": {"key": ref.remote_key, "property": ref.property}}],
        },
    }
