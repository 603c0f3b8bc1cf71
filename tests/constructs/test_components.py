"""Per-construct tests on the rendered reference environments and on edited specs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mlplatform.schema import Environment, load_environment
from mlplatform.synth import render_environment


def _objects(env: Environment) -> list[dict[str, Any]]:
    """One environment synthesized by cdk8s, parsed."""
    return [yaml.safe_load(text) for text in render_environment(env).values()]


RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _pod_specs(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (o["metadata"]["name"], o["spec"]["template"]["spec"])
        for o in objs
        if o["kind"] in ("Deployment", "StatefulSet")
    ]


def test_namespace_psa_restricted_pinned(objects: dict[str, list[dict[str, Any]]], find_object: Any) -> None:
    ns = find_object(objects["dev"], "Namespace", "mlplatform-dev")
    for mode in ("enforce", "audit", "warn"):
        assert ns["metadata"]["labels"][f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert ns["metadata"]["labels"][f"pod-security.kubernetes.io/{mode}-version"] == "v1.33"
    assert find_object(objects["dev"], "ResourceQuota", "compute")["spec"]["hard"]["pods"] == "20"
    assert find_object(objects["dev"], "LimitRange", "container-defaults")


def test_every_pod_is_restricted_pinned_and_bounded(objects: dict[str, list[dict[str, Any]]]) -> None:
    for env in ("dev", "stage", "prod"):
        for name, pod in _pod_specs(objects[env]):
            assert pod["automountServiceAccountToken"] is False
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            for c in pod["containers"] + pod.get("initContainers", []):
                where = f"{env}/{name}/{c['name']}"
                assert RESTRICTED.items() <= c["securityContext"].items(), where
                assert "@sha256:" in c["image"], where
                for part in ("requests", "limits"):
                    assert {"cpu", "memory", "ephemeral-storage"} <= set(c["resources"][part]), where
            for c in pod["containers"]:
                assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(c), f"{env}/{name}"
        accounts = [o for o in objects[env] if o["kind"] == "ServiceAccount"]
        # one per pod identity: redis, inference, and where jobs are on jobs-redis and the worker (its own
        # identity, apart from the API's: a mesh authorizes by it); cdk8s-plus L2: no token mounted, kept
        used = {pod["serviceAccountName"] for _, pod in _pod_specs(objects[env])}
        assert {a["metadata"]["name"] for a in accounts} == used
        assert len(accounts) == (4 if env == "stage" else 2)
        for account in accounts:
            assert account["automountServiceAccountToken"] is False, account["metadata"]["name"]


def test_inference_deployment(objects: dict[str, list[dict[str, Any]]], find_object: Any) -> None:
    dev = find_object(objects["dev"], "Deployment", "inference")
    assert dev["spec"]["replicas"] == 1  # no autoscaler in dev
    stage = find_object(objects["stage"], "Deployment", "inference")
    assert "replicas" not in stage["spec"]  # the HPA owns it
    hpa = find_object(objects["stage"], "HorizontalPodAutoscaler", "inference")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    prod = find_object(objects["prod"], "Deployment", "inference")
    assert "replicas" not in prod["spec"]
    assert find_object(objects["prod"], "ScaledObject", "inference")["spec"]["maxReplicaCount"] == 12
    assert len(prod["spec"]["template"]["spec"]["topologySpreadConstraints"]) == 2
    assert "topologySpreadConstraints" not in dev["spec"]["template"]["spec"]
    container = dev["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["runAsUser"] == 10001
    assert container["ports"] == [  # gRPC too: platform.yaml's service leaves `grpc` on
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "grpc", "containerPort": 8081, "protocol": "TCP"},
    ]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # room to load and warm models
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert set(mounts) == {"/tmp", "/var/run/secrets/inference", "/var/run/secrets/redis"}
    config = find_object(objects["dev"], "ConfigMap", "inference-config")["data"]
    assert config["INFERENCE_MODELS"] == "breast-cancer:1,minilm-embedding:1"
    assert config["INFERENCE_REDIS_URL"] == "redis://redis:6379/0"
    assert config["INFERENCE_REDIS_PASSWORD_FILE"] == "/var/run/secrets/redis/password"
    assert config["INFERENCE_API_KEYS_FILE"] == "/var/run/secrets/inference/api-keys"
    assert config["INFERENCE_CACHE_TTL_SECONDS"] == "60"  # overlay overrides the platform default
    sa = find_object(objects["dev"], "ServiceAccount", "inference")
    assert sa["automountServiceAccountToken"] is False


def test_model_cache_pvc_and_init_container(
    objects: dict[str, list[dict[str, Any]]], find_object: Any
) -> None:
    pvc = find_object(objects["stage"], "PersistentVolumeClaim", "inference-model-cache")
    assert pvc["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false,Delete=false"
    pod = find_object(objects["stage"], "Deployment", "inference")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert "@sha256:" in init["image"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True


def test_redis(objects: dict[str, list[dict[str, Any]]], find_object: Any, repo_root: Path) -> None:
    sts = find_object(objects["dev"], "StatefulSet", "redis")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "standard"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert claim["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false,Delete=false"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    conf = find_object(objects["dev"], "ConfigMap", "redis-config")["data"]["redis.conf"]
    assert "maxmemory 128mb" in conf and "maxmemory-policy allkeys-lru" in conf
    assert find_object(objects["dev"], "Service", "redis-headless")["spec"]["clusterIP"] == "None"
    assert not [
        o for o in objects["dev"] if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == "redis"
    ]
    assert find_object(objects["prod"], "PodDisruptionBudget", "redis")  # 2 replicas in prod
    secret = find_object(objects["dev"], "ExternalSecret", "redis-auth")["spec"]
    assert secret["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "platform-secrets"}
    env = load_environment("prod", repo_root=repo_root)
    services = [
        o for o in _objects(env) if o["kind"] == "Service" and o["metadata"]["name"].startswith("redis")
    ]
    assert len(services) == 2
    client = find_object(objects["prod"], "Service", "redis")["spec"]
    assert client["selector"]["statefulset.kubernetes.io/pod-name"] == "redis-0"  # writes go to the primary
    assert client["ports"] == [{"name": "redis", "port": 6379, "protocol": "TCP", "targetPort": "redis"}]


def test_routing(objects: dict[str, list[dict[str, Any]]], find_object: Any) -> None:
    ingress = find_object(objects["dev"], "Ingress", "inference")
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-staging"
    assert ingress["spec"]["tls"][0]["hosts"] == ["inference.dev.mlplatform.example.com"]
    route = find_object(objects["prod"], "HTTPRoute", "inference")
    weights = {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}
    assert weights == {"inference": 90, "inference-canary": 10}
    canary = find_object(objects["prod"], "ConfigMap", "inference-canary-config")["data"]
    assert canary["INFERENCE_MODELS"] == "breast-cancer:2,minilm-embedding:1"


def test_gpu_switch(spec_copy: Path, edit_yaml: Any) -> None:
    def gpu(d: Any) -> None:
        d["quota"]["requestsGpu"] = 2
        d["services"]["inference"]["gpu"] = {
            "count": 1,
            "nodeSelector": {"nvidia.com/gpu.present": "true"},
            "tolerations": [{"key": "nvidia.com/gpu"}],
        }

    edit_yaml(spec_copy / "overlays" / "dev.yaml", gpu)
    env = load_environment("dev", repo_root=spec_copy)
    deployment = next(
        o for o in _objects(env) if o["kind"] == "Deployment" and o["metadata"]["name"] == "inference"
    )
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_second_service_is_a_few_lines_of_yaml(spec_copy: Path, edit_yaml: Any) -> None:
    def platform(d: Any) -> None:
        d["services"]["ranker"] = dict(
            d["services"]["inference"], models=[{"name": "minilm-embedding", "version": "1"}]
        )
        d["connections"] += [
            {"from": "ingress-controller", "to": "ranker"},
            {"from": "ranker", "to": "redis"},
        ]

    edit_yaml(spec_copy / "overlays" / "platform.yaml", platform)
    for env in ("dev", "stage", "prod"):
        edit_yaml(
            spec_copy / "overlays" / f"{env}.yaml",
            lambda d: d["services"].update(
                ranker={
                    **d["services"]["inference"],
                    "host": "ranker.example.com",
                    "canary": None,
                    "grpcHost": None,
                }
            ),
        )
    env = load_environment("prod", repo_root=spec_copy)
    objs = _objects(env)
    names = {
        (o["kind"], o["metadata"]["name"])
        for o in objs
        if o["metadata"]["labels"].get("app.kubernetes.io/name") == "ranker"
    }
    assert {
        ("ServiceAccount", "ranker"),
        ("ConfigMap", "ranker-config"),
        ("ExternalSecret", "ranker-api-keys"),
        ("Deployment", "ranker"),
        ("Service", "ranker"),
        ("PodDisruptionBudget", "ranker"),
        ("ScaledObject", "ranker"),
        ("HTTPRoute", "ranker"),
    } <= names
    policies = {o["metadata"]["name"] for o in objs if o["kind"] == "NetworkPolicy"}
    assert {
        "allow-ranker-from-ingress-controller",
        "allow-ranker-to-redis",
        "allow-redis-from-ranker",
    } <= policies


def test_argocd(objects: dict[str, list[dict[str, Any]]], find_object: Any) -> None:
    argo = objects["argocd"]
    dev = find_object(argo, "Application", "mlplatform-dev")["spec"]
    assert dev["source"]["path"] == "dist/dev"
    assert dev["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    prod = find_object(argo, "Application", "mlplatform-prod")["spec"]
    assert "automated" not in prod["syncPolicy"]
    assert prod["ignoreDifferences"][0]["jsonPointers"] == ["/spec/replicas"]
    assert "ignoreDifferences" not in dev  # dev has fixed replicas
    root = find_object(argo, "Application", "mlplatform-root")["spec"]
    assert root["source"]["path"] == "dist/argocd"
    project = find_object(argo, "AppProject", "mlplatform")["spec"]
    assert project["sourceRepos"] == ["https://github.com/example/mlplatform-gitops.git"]
    assert {"server": "https://prod.k8s.example.com", "namespace": "mlplatform-prod"} in project[
        "destinations"
    ]


def test_sync_waves_order(objects: dict[str, list[dict[str, Any]]]) -> None:
    wave = {
        o["kind"] + "/" + o["metadata"]["name"]: int(
            o["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
        )
        for o in objects["dev"]
    }
    assert wave["Namespace/mlplatform-dev"] == wave["NetworkPolicy/default-deny"] < wave["StatefulSet/redis"]
    assert wave["ExternalSecret/redis-auth"] < wave["Deployment/inference"]
    assert wave["StatefulSet/redis"] < wave["Deployment/inference"]


def test_grpc_routes_and_policies(objects: dict[str, list[dict[str, Any]]], find_object: Any) -> None:
    """The gRPC port's external route (overlay grpcHost) splits as the HTTPRoute does, on its own host; the
    nginx form proxies over gRPC with its own certificate; only the `grpc: true` connection reaches 8081."""
    http = find_object(objects["prod"], "HTTPRoute", "inference")
    grpc = find_object(objects["prod"], "GRPCRoute", "inference-grpc")

    def split(route: dict[str, Any]) -> list[tuple[str, int]]:
        return [(b["name"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]]

    assert split(grpc) == split(http) == [("inference", 90), ("inference-canary", 10)]
    assert {b["port"] for b in grpc["spec"]["rules"][0]["backendRefs"]} == {8081}
    assert grpc["spec"]["parentRefs"] == http["spec"]["parentRefs"]
    assert grpc["spec"]["hostnames"] == ["inference-grpc.mlplatform.example.com"] != http["spec"]["hostnames"]
    for env in ("dev", "stage"):
        ingress = find_object(objects[env], "Ingress", "inference-grpc")
        assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPC"
        rule = ingress["spec"]["rules"][0]
        assert rule["http"]["paths"][0]["backend"]["service"] == {
            "name": "inference",
            "port": {"name": "grpc"},
        }
        assert ingress["spec"]["tls"] == [{"hosts": [rule["host"]], "secretName": "inference-grpc-tls"}]
        http_ingress = find_object(objects[env], "Ingress", "inference")
        assert "nginx.ingress.kubernetes.io/backend-protocol" not in http_ingress["metadata"]["annotations"]
    stage = objects["stage"]
    routed = find_object(stage, "NetworkPolicy", "allow-inference-from-ingress-controller")
    scraped = find_object(stage, "NetworkPolicy", "allow-inference-from-metrics-scraper")
    assert [p["port"] for p in routed["spec"]["ingress"][0]["ports"]] == [8080, 8081]
    assert [p["port"] for p in scraped["spec"]["ingress"][0]["ports"]] == [8080]
