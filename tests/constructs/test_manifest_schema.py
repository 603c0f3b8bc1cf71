"""Every object of every environment against the Kubernetes 1.33 OpenAPI schema (kubernetes-validate, strict).

kubernetes-validate ships only built-in kinds. For the CRD kinds (Argo CD Application/AppProject,
ExternalSecret, ScaledObject, ServiceMonitor, HTTPRoute, GRPCRoute, Kyverno's policies and exceptions) it has
no schema: for those this test checks instead that the apiVersion is one the platform pins and that kind,
metadata.name and spec are there;
the construct tests check their fields.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest

K8S_VERSION = "1.33.0"
CRD_API_VERSIONS = {
    "Application": {"argoproj.io/v1alpha1"},
    "AppProject": {"argoproj.io/v1alpha1"},
    "ExternalSecret": {"external-secrets.io/v1"},
    "ScaledObject": {"keda.sh/v1alpha1"},
    "TriggerAuthentication": {"keda.sh/v1alpha1"},
    "ServiceMonitor": {"monitoring.coreos.com/v1"},
    "HTTPRoute": {"gateway.networking.k8s.io/v1"},
    "GRPCRoute": {"gateway.networking.k8s.io/v1"},
    "ClusterPolicy": {"kyverno.io/v1"},
    "ValidatingPolicy": {"policies.kyverno.io/v1"},
    "ImageValidatingPolicy": {"policies.kyverno.io/v1"},  # verify-image-signatures
    # waivers: for a ValidatingPolicy, and for a ClusterPolicy
    "PolicyException": {"policies.kyverno.io/v1", "kyverno.io/v2"},
}


def test_validator_ships_the_target_version() -> None:
    assert K8S_VERSION in kubernetes_validate.utils.all_versions()


def test_every_object_validates(objects: dict[str, list[dict[str, Any]]]) -> None:
    checked = 0
    for folder, objs in objects.items():
        for obj in objs:
            kind = obj["kind"]
            where = f"{folder}/{kind}/{obj['metadata']['name']}"
            if kind in CRD_API_VERSIONS:
                assert obj["apiVersion"] in CRD_API_VERSIONS[kind], where
                assert obj["metadata"]["name"], where
                assert "spec" in obj, where
                continue
            try:
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:  # pragma: no cover - the failure message
                pytest.fail(f"{where}: {exc.message} at {list(exc.path)}")
            checked += 1
    assert checked > 50


def test_validator_rejects_a_broken_object(objects: dict[str, list[dict[str, Any]]]) -> None:
    deployment = next(o for o in objects["dev"] if o["kind"] == "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replicas": "one"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
