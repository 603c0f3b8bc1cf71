"""What every construct shares: emitting an object, sync waves, the restricted security contexts."""

from __future__ import annotations

from typing import Any

import cdk8s

from constructs import Construct

WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"
#: Sync waves: namespace, quotas and network policies first, then secrets and Redis, then the services.
WAVE_NAMESPACE = "0"
WAVE_DATA = "1"
WAVE_SERVICES = "2"
NO_PRUNE = {"argocd.argoproj.io/sync-options": "Prune=false"}

_HEAD_KEYS = ("apiVersion", "kind", "metadata")


def emit(scope: Construct, manifest: dict[str, Any]) -> cdk8s.ApiObject:
    """Add one Kubernetes object, given as a plain dict, to the construct tree.

    The construct id is `<kind>-<name>`, readable and stable; cdk8s renders the object unchanged.
    """
    meta = manifest["metadata"]
    obj = cdk8s.ApiObject(
        scope,
        f"{manifest['kind'].lower()}-{meta['name']}",
        api_version=manifest["apiVersion"],
        kind=manifest["kind"],
        metadata=meta,
    )
    patches = [
        cdk8s.JsonPatch.add(f"/{key}", value) for key, value in manifest.items() if key not in _HEAD_KEYS
    ]
    if patches:
        obj.add_json_patch(*patches)
    return obj


def metadata(
    *,
    name: str,
    labels: dict[str, str],
    namespace: str | None,
    wave: str,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Object metadata; `namespace=None` for cluster-scoped kinds."""
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict(labels)
    meta["annotations"] = {WAVE_ANNOTATION: wave, **(annotations or {})}
    return meta


def pod_security_context(uid: int) -> dict[str, Any]:
    """Pod-level restricted settings: fixed non-root UID/GID, fsGroup for volumes, seccomp RuntimeDefault."""
    return {
        "fsGroup": uid,
        "fsGroupChangePolicy": "OnRootMismatch",
        "runAsGroup": uid,
        "runAsNonRoot": True,
        "runAsUser": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(uid: int) -> dict[str, Any]:
    """Container-level restricted settings (Pod Security Standard `restricted`, plus a read-only root)."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsGroup": uid,
        "runAsNonRoot": True,
        "runAsUser": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def service_account(*, name: str, namespace: str, labels: dict[str, str], wave: str) -> dict[str, Any]:
    """A ServiceAccount whose token is never mounted automatically."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(name=name, namespace=namespace, labels=labels, wave=wave),
        "automountServiceAccountToken": False,
    }
