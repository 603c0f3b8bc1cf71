"""`runtime: kserve`: each version of a service is a KServe InferenceService in RawDeployment mode, whose
predictor carries the very pod spec the Deployment runtime renders for the same overlay."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.synth import render


def _objects(root: Path, env: str) -> list[dict[str, Any]]:
    files = render(root, only=[env]).folders[env]
    return [yaml.safe_load(text) for name, text in files.items() if name.endswith(".yaml")]


def as_kserve(data: dict[str, Any]) -> None:
    """`runtime: kserve`, with each autoscaler on CPU: KServe's controller makes the autoscaler, and scales
    on CPU (a load signal with runtime kserve is refused: tests/constructs/test_spec_errors.py)."""
    data["runtime"] = "kserve"
    for service in data["services"].values():
        (service.get("autoscaling") or {}).pop("signal", None)


@pytest.fixture
def both(spec_copy: Path, edit_yaml: Any) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """prod and stage, rendered as Deployments and then, after `runtime: kserve`, as InferenceServices."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for env in ("prod", "stage"):
        out.setdefault(env, {})["deployment"] = _objects(spec_copy, env)
    for env in ("prod", "stage"):
        edit_yaml(spec_copy / "overlays" / f"{env}.yaml", as_kserve)
        out[env]["kserve"] = _objects(spec_copy, env)
    return out


def _kinds(objs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objs}


def test_each_version_is_an_inference_service_and_kserve_makes_the_rest(both: Any, find_object: Any) -> None:
    for env, rendered in both.items():
        deployment, kserve = _kinds(rendered["deployment"]), _kinds(rendered["kserve"])
        versions = {  # the job worker stays a Deployment: KServe serves requests, it runs no queue consumer
            name
            for kind, name in deployment
            if kind == "Deployment" and name.startswith("inference") and not name.endswith("-worker")
        }
        assert versions, env
        assert {("InferenceService", v) for v in versions} <= kserve
        made_by_kserve = {"Deployment", "Service", "HorizontalPodAutoscaler", "ScaledObject"}
        gone = {(k, n) for k, n in deployment - kserve}
        # KServe's runtime serves HTTP only: the gRPC route goes (README "gRPC")
        route = ("GRPCRoute" if env == "prod" else "Ingress", "inference-grpc")
        assert route in gone, env
        gone.remove(route)
        assert all(k in made_by_kserve and n.startswith("inference") for k, n in gone), gone
        for version in versions:
            isvc = find_object(rendered["kserve"], "InferenceService", version)
            assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
            assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
            assert isvc["metadata"]["labels"]["networking.kserve.io/visibility"] == "cluster-local"


def test_the_predictor_is_the_deployments_pod_spec(both: Any, find_object: Any) -> None:
    for rendered in both.values():
        for isvc in [o for o in rendered["kserve"] if o["kind"] == "InferenceService"]:
            name = isvc["metadata"]["name"]
            template = find_object(rendered["deployment"], "Deployment", name)["spec"]["template"]
            predictor = dict(isvc["spec"]["predictor"])
            assert predictor.pop("labels") == template["metadata"]["labels"]
            assert predictor.pop("annotations", None) == template["metadata"].get("annotations")
            scaling = {"minReplicas", "maxReplicas", "scaleMetric", "scaleMetricType", "scaleTarget"}
            for key in (*scaling, "autoScaling", "deploymentStrategy"):
                predictor.pop(key, None)
            spec = copy.deepcopy(template["spec"])
            for container in spec["containers"]:  # KServe's runtime serves HTTP only: no gRPC port
                container["ports"] = [p for p in container["ports"] if p["name"] != "grpc"]
            assert predictor == spec, name


def test_scaling_and_rollout_follow_the_overlay(both: Any, find_object: Any) -> None:
    prod = find_object(both["prod"]["kserve"], "InferenceService", "inference")
    assert prod["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "keda"
    predictor = prod["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (3, 12)
    assert predictor["autoScaling"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 65
    assert predictor["deploymentStrategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    stage = find_object(both["stage"]["kserve"], "InferenceService", "inference")
    assert stage["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "hpa"
    assert stage["spec"]["predictor"]["scaleMetric"] == "cpu"
    canary = find_object(both["prod"]["kserve"], "InferenceService", "inference-canary")
    assert canary["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "none"
    assert (canary["spec"]["predictor"]["minReplicas"], canary["spec"]["predictor"]["maxReplicas"]) == (1, 1)


def test_routes_point_at_the_predictor_services(both: Any, find_object: Any) -> None:
    route = find_object(both["prod"]["kserve"], "HTTPRoute", "inference")
    backends = route["spec"]["rules"][0]["backendRefs"]
    assert [(b["name"], b["port"], b["weight"]) for b in backends] == [
        ("inference-predictor", 80, 90),
        ("inference-canary-predictor", 80, 10),
    ]
    ingress = find_object(both["stage"]["kserve"], "Ingress", "inference")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "inference-predictor", "port": {"name": "http"}}


def test_the_deployment_runtime_is_the_default(both: Any) -> None:
    for rendered in both.values():
        assert not [o for o in rendered["deployment"] if o["kind"] == "InferenceService"]


def test_argo_cd_may_sync_inference_services_only_where_an_environment_has_them(
    spec_copy: Path, edit_yaml: Any
) -> None:
    def whitelisted() -> set[tuple[str, str]]:
        files = render(spec_copy, only=["prod"]).folders["argocd"]
        (project,) = [yaml.safe_load(t) for n, t in files.items() if n == "appproject-mlplatform.yaml"]
        return {(k["group"], k["kind"]) for k in project["spec"]["namespaceResourceWhitelist"]}

    assert ("serving.kserve.io", "InferenceService") not in whitelisted()
    edit_yaml(spec_copy / "overlays" / "prod.yaml", as_kserve)
    assert ("serving.kserve.io", "InferenceService") in whitelisted()
